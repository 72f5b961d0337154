"""Build the :class:`WorkerSpec` a slot's next process starts from (pure)."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..protocol import BrokerSettings, WorkerSpec
from .pool import Pool
from .slot import Slot


def build_spec(config: Config, pool: Pool, slot: Slot, broker: BrokerSettings, log_dir: Path | None, *,
               release: bool = False) -> WorkerSpec:
    """Everything the process for ``slot`` needs; ``release`` makes it a release client."""
    route = pool.route
    return WorkerSpec(
        worker_id=slot.id, route=route.name, slot=slot.index, client_id=slot.client_id, pattern=route.topic,
        subscribe_filter=pool.filter, handler=route.handler, qos=route.qos, root=str(config.root),
        broker=broker,
        log_level=slot.log_level, heartbeat_interval=config.fleet.heartbeat_interval,
        idle_heartbeat_interval=idle_beat_interval(config.fleet),
        handler_retries=config.fleet.handler_retries, dead_letter_topic=config.fleet.dead_letter_topic,
        poison_mids=frozenset(slot.poison),
        log_file=str(log_dir / f"{route.name}-{slot.index}.log") if log_dir is not None else None,
        release_only=release, concurrency=route.concurrency, session_expiry=config.fleet.session_expiry,
        handler_thread=needs_handler_thread(config, route))


def needs_handler_thread(config: Config, route) -> bool:
    """Whether ``route``'s handlers run on a thread of their own rather than on paho's network thread.

    On the network thread (the default) a message costs what it costs in a bare paho subscriber;
    but while a handler runs, the client sends no keepalive ping.  That is safe while the hang
    watchdog kills a stuck handler before the broker gives up on the connection (1.5 keepalives);
    a route whose handlers may legitimately run longer gets the thread, as does one that asks."""
    keepalive = config.broker.keepalive
    return route.handler_thread or (keepalive > 0 and config.fleet.hang_timeout >= 1.5 * keepalive)


def idle_beat_interval(fleet) -> float:
    """How often an idle worker beats: every 10 s (the defaults: hang_timeout 30 s), but at least 3 beats
    per hang_timeout (the watchdog); 1,000 idle workers then wake the supervisor 100 times a second."""
    return max(fleet.heartbeat_interval, min(10.0, fleet.hang_timeout / 3.0))


def worker_spec(core, fleet, spawn) -> WorkerSpec:
    """The spec for a :class:`Spawn` effect of ``core`` run by ``fleet`` (its broker address and log dir)."""
    slot = core.find(spawn.key)
    log_dir = fleet._state_dir / "logs" if fleet._state_dir is not None else None
    return build_spec(core.config, core.pools[slot.route], slot, fleet.broker_settings(), log_dir,
                      release=spawn.release)


def adoption_spec(fleet, record: dict) -> WorkerSpec | None:
    """The release spec for another host's slot ``record`` (``client_id``, ``route``, ``slot``) on a route
    of ``fleet``'s config (same name, so the same filter); None when this config has no such route."""
    pool = fleet._core.pools.get(str(record.get("route")))
    client_id = str(record.get("client_id") or "")
    if pool is None or not client_id:
        return None
    slot = Slot(pool.name, int(record.get("slot") or 0), client_id, "INFO")
    return build_spec(fleet.config, pool, slot, fleet.broker_settings(), None, release=True)
