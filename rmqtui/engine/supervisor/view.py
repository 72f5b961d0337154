"""Turn the core's state into an immutable :class:`FleetSnapshot` (pure: figures are passed in)."""

from __future__ import annotations

from dataclasses import replace

from typing import Any, Callable

from ..snapshot import BrokerSnapshot, ExitRecord, FleetSnapshot, RouteSnapshot, WorkerSnapshot, WorkerState
from ..skew import share_skew
from ..textsafe import clean
from .core import FleetCore
from .slot import Slot


def build_snapshot(core: FleetCore, wall: float, sample: Callable[[int | None], Any], *,
                   supervisor: tuple[int | None, float | None, int | None] = (None, None, None),
                   hostname: str = "", extra: dict | None = None, cache: WorkerCache | None = None) -> FleetSnapshot:
    """The fleet at ``wall`` (unix time); ``sample(pid)`` gives a process's figures or None;
    ``supervisor`` is (pid, cpu %, rss); ``cache`` keeps unchanged workers' snapshots (see WorkerCache)."""
    workers = []
    routes = []
    cache = cache if cache is not None else WorkerCache()
    for pool in core.pools.values():
        rate = 0.0
        running = 0
        for slot in sorted(pool.slots.values(), key=lambda s: s.index):
            workers.append(cache.worker(slot, wall, sample(slot.worker_pid)))
            rate += slot.meter.rate
            running += slot.worker_pid is not None
        received, handled, failed = pool.totals()
        r = pool.route
        routes.append(RouteSnapshot(
            name=r.name, topic=r.topic, filter=pool.filter, shared=r.shared, qos=r.qos, desired=pool.desired,
            running=running, received=received, handled=handled, failed=failed, rate=rate,
            history=tuple(pool.history.values)))
    b = core.broker
    broker = BrokerSnapshot(host=b.host, port=b.port, embedded=b.embedded, state=b.state,
                            protocol=core.config.broker.protocol, reason=b.reason, pid=b.pid, restarts=b.restarts,
                            unix_path=b.unix_path, tcp=b.tcp)
    cache.keep_only(workers)
    pid, cpu, rss = supervisor
    return FleetSnapshot(
        time=wall, started=core.started, group=core.config.fleet.group, config_path=str(core.config.path),
        broker=broker, routes=tuple(routes), workers=tuple(workers), log_level=core.log_level,
        stopping=core.stopping, supervisor_pid=pid, supervisor_cpu=cpu, supervisor_rss=rss, hostname=hostname,
        extra=dict(extra or {}))


class WorkerCache:
    """Each slot's last snapshot and what it was built from.

    A slot whose inputs did not change gets the very object it got last time: building 100 worker
    snapshots was most of an idle supervisor's engine thread, and the front ends and the control
    socket tell an unchanged worker by identity (the socket sends only changed workers, the TUI
    redraws only their rows).  A rebuilt snapshot that equals the old one is replaced by the old
    object too, so "same object" always means "same figures".
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[Slot, tuple, WorkerSnapshot]] = {}

    def worker(self, slot: Slot, wall: float, sample: Any) -> WorkerSnapshot:
        inputs = _inputs(slot, sample)
        last = self._last.get(slot.id)
        if last is not None and last[0] is slot and last[1] == inputs:
            return last[2]
        w = worker_snapshot(slot, wall, sample)
        if last is not None and last[2] == w:
            w = last[2]
        self._last[slot.id] = (slot, inputs, w)
        return w

    def keep_only(self, workers: list[WorkerSnapshot]) -> None:
        """Forget slots that are gone."""
        if len(self._last) != len(workers):
            ids = {w.id for w in workers}
            self._last = {k: v for k, v in self._last.items() if k in ids}


def _inputs(slot: Slot, sample: Any) -> tuple:
    """Everything :func:`worker_snapshot` reads of ``slot`` (heartbeats and samples are new objects
    each time, never changed in place; the counts of ended processes change only with the heartbeat)."""
    exits = slot.exits
    return (slot.phase, slot.pid, slot.state, slot.reason, slot.hb, sample, slot.meter.rate, slot.restarts,
            slot.log_level, slot.last_exit, len(exits), exits[-1] if exits else None, slot.started, slot.client_id,
            tuple(slot.base))


def worker_snapshot(slot: Slot, wall: float, sample: Any) -> WorkerSnapshot:
    """One slot at ``wall``; ``sample`` is its process's figures (or None)."""
    received, handled, failed, dead, seconds = slot.totals()
    pid = slot.worker_pid
    return WorkerSnapshot(
        id=slot.id, route=slot.route, slot=slot.index, client_id=slot.client_id, pid=pid, state=slot.state,
        reason=slot.reason, received=received, handled=handled, failed=failed, dead_lettered=dead,
        rate=slot.meter.rate, handler_seconds=seconds, in_flight=_in_flight(slot.hb),
        cpu_percent=sample.cpu_percent if sample else None, rss=sample.rss if sample else None,
        uss=sample.uss if sample else None, fds=sample.fds if sample else None,
        threads=sample.threads if sample else None, cpu_seconds=sample.cpu_seconds if sample else None,
        restarts=slot.restarts,
        started=slot.started if pid else None, log_level=slot.log_level,
        last_exit=slot.last_exit, exits=tuple(_clean_exit(e) for e in slot.exits),
        restarts_by_reason=tuple(sorted(slot.restart_causes.items())), redelivered=slot.count("redelivered"),
        poisoned=slot.count("poisoned"), handler_durations=slot.durations())


def busy_pids(snap: FleetSnapshot) -> frozenset[int]:
    """Worker pids with something going on (messages, a call in hand, not plainly subscribed): the
    sampler reads these every pass and the idle rest only now and then."""
    return frozenset(w.pid for w in snap.workers
                     if w.pid and (w.rate or w.in_flight or w.state is not WorkerState.SUBSCRIBED))


def _clean_exit(e: ExitRecord) -> ExitRecord:
    """The record with its stderr line made safe for a terminal or JSON."""
    return ExitRecord(e.time, e.code, e.cause, clean(e.detail)) if e.detail else e


def _in_flight(hb) -> int:
    """Messages the worker holds unacknowledged (several with ``concurrency``); older heartbeats only say busy."""
    if hb is None:
        return 0
    return getattr(hb, "in_flight", 0) or (1 if hb.busy_since else 0)


class RouteNotes:
    """What a snapshot alone cannot tell: each route's share skew over the last ``window`` seconds."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._base: FleetSnapshot | None = None
        self.skew: dict[str, float | None] = {}

    def update(self, snap: FleetSnapshot) -> None:
        if self._base is None:
            self._base = snap
        elif snap.time - self._base.time >= self.window:
            self.skew = {r.name: share_skew(self._base, snap, r.name) for r in snap.routes}
            self._base = snap


def with_route_notes(notes: RouteNotes, snap: FleetSnapshot, advice: dict) -> FleetSnapshot:
    """``snap`` with each route's skew and the autoscaler's advice filled in."""
    notes.update(snap)
    if not notes.skew and not advice:
        return snap
    routes = tuple(replace(r, skew=notes.skew.get(r.name), advice=advice.get(r.name, (None, ""))[0],
                           advice_reason=advice.get(r.name, (None, ""))[1]) for r in snap.routes)
    return replace(snap, routes=routes)
