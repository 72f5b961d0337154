"""The pure supervision core: every pool, the event ring and what is known of the broker.

:class:`FleetCore` takes events (a process started or ended, a worker's message, a tick)
with the time passed in, and returns effects for the caller to run.  It reads no clock
and touches no process, pipe, socket or psutil, so the real fleet, the demo fleet and
the unit tests all run the very same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .. import config as config_mod
from ..config import Config
from ..protocol import Heartbeat, LogLine, Status
from ..textsafe import clean
from ..snapshot import BrokerState, WorkerState
from ..topics import TopicPattern, shared_filter
from .events import EventRing
from .policy import RestartPolicy, policy_from
from .pool import Pool
from .rates import STALE_AFTER
from .slot import Effect, Note, Phase, Slot

#: processes one tick starts at most (the rest at the next one, right after the records that came meanwhile)
START_BATCH = 32
#: Phases with nothing due soon: when every slot is in one, the engine ticks once a second, not four times
_CALM = frozenset({Phase.SERVING, Phase.PAUSED, Phase.FAILED})


@dataclass
class BrokerView:
    """What the core knows of the broker (the keeper and the workers' heartbeats feed it)."""

    host: str
    port: int
    embedded: bool
    state: BrokerState = BrokerState.STARTING
    reason: str = ""
    pid: int | None = None
    restarts: int = 0
    unix_path: str | None = None
    tcp: bool = True


class FleetCore:
    """Pools, policy, events and broker view of one fleet (see the module docstring)."""

    def __init__(self, config: Config, *, started: float, policy: RestartPolicy | None = None,
                 prefix: str | None = None) -> None:
        self.config = config
        self.policy = policy or policy_from(config.fleet)
        self.prefix = prefix or config_mod.client_prefix(config)
        self.pools: dict[str, Pool] = {}
        for r in config.routes:
            pattern = TopicPattern.parse(r.topic)
            flt = shared_filter(r.group or config.fleet.group, pattern.filter) if r.shared else pattern.filter
            self.pools[r.name] = Pool(r, flt, self.prefix)
        self.ring = EventRing()
        self._found: dict[str, Slot] = {}  # id -> slot, a cache for find()
        self.log_level = config.fleet.log_level
        self.stopping = False
        self.calm = False  # the last tick found nothing due soon (see _CALM)
        self.backlog = False  # the last tick held starts back (START_BATCH)
        self.forced = False  # a forced stop: no release client is started any more
        self.started = started
        b = config.broker
        self.broker = BrokerView(b.host, b.port, b.embedded)

    # ---------------------------------------------------------------- reading
    def slots(self) -> Iterator[Slot]:
        """Every slot of every pool, by route then index."""
        for pool in self.pools.values():
            yield from sorted(pool.slots.values(), key=lambda s: s.index)

    def find(self, worker: str) -> Slot | None:
        """The slot with id ``route/index``, if any."""
        slot = self._found.get(worker)
        if slot is not None and slot.phase is not Phase.GONE:
            return slot  # the heartbeat path: one lookup (a slot is never replaced while it lives)
        route, _, index = worker.rpartition("/")
        pool = self.pools.get(route)
        if pool is None or not index.isdigit():
            return None
        slot = pool.slots.get(int(index))
        if slot is not None:
            self._found[worker] = slot
        else:
            self._found.pop(worker, None)
        return slot

    def desired_total(self) -> int:
        """Workers the pools want."""
        return sum(p.desired for p in self.pools.values())

    def worker_pids(self) -> list[int]:
        """pids of live worker processes (release clients excluded)."""
        return [s.pid for s in self.slots() if s.worker_pid is not None]

    def idle(self) -> bool:
        """Stopping, and no process and no due release is left."""
        return self.stopping and not any(s.has_process or (s.needs_release and not self.forced)
                                         for s in self.slots())

    # ----------------------------------------------------------------- events
    def note(self, level: str, source: str, message: str, wall: float) -> None:
        """Add a record to the event ring."""
        self.ring.add(level, source, message, wall)

    def absorb(self, effects: list[Effect], wall: float) -> list[Effect]:
        """Record the notes among ``effects``; return the rest, for the caller to run."""
        out = []
        for e in effects:
            if isinstance(e, Note):
                self.ring.add(e.level, e.source, e.message, wall)
            else:
                out.append(e)
        return out

    def spawned(self, key: str, pid: int, now: float, wall: float) -> list[Effect]:
        """The process asked for slot ``key`` runs as ``pid``."""
        slot = self.find(key)
        if slot is None:
            return []
        return self.absorb(slot.spawned(pid, now, wall, self.policy, self.stopping), wall)

    def spawn_failed(self, key: str, error: str, now: float, wall: float) -> list[Effect]:
        """The process for slot ``key`` could not be started."""
        slot = self.find(key)
        return self.absorb(slot.spawn_failed(error, now, self.policy), wall) if slot else []

    def message(self, key: str, msg: object, now: float, wall: float) -> bool:
        """A message from the worker of slot ``key``; True when the slot's state changed."""
        slot = self.find(key)
        if slot is None:
            return False
        if isinstance(msg, Heartbeat):
            slot.heartbeat(msg, now)
            return False
        if isinstance(msg, Status):
            self.absorb(slot.status(msg.state, clean(msg.reason)), wall)
            if slot.phase is Phase.RELEASING:
                return False
            if slot.state is WorkerState.FAILED and "refused the connection" in slot.reason:
                self.broker.state, self.broker.reason = BrokerState.AUTH_FAILED, slot.reason
            elif slot.state is WorkerState.SUBSCRIBED and self.broker.state is BrokerState.AUTH_FAILED:
                self.broker.state, self.broker.reason = BrokerState.UP, ""
            return True
        if isinstance(msg, LogLine):
            self.ring.add(msg.level, slot.id, msg.message, msg.time or wall)
        return False

    def exited(self, key: str, code: int | None, tail: str, mid: int, now: float, wall: float,
               spread: float = 0.5) -> list[Effect]:
        """The process of slot ``key`` ended with ``code``."""
        slot = self.find(key)
        if slot is None:
            return []
        pool = self.pools[slot.route]
        out = self.absorb(slot.exited(code, tail, mid, now, self.policy, stopping=self.stopping,
                                      others_serving=pool.serving_count(excluding=slot) > 0, spread=spread,
                                      wall=wall), wall)
        if slot.phase is Phase.GONE:
            pool.forget(slot)
        return out

    def tick(self, now: float, wall: float, spread: float = 0.5) -> list[Effect]:
        """Watchdog, reconcile and history: what the engine does a few times a second."""
        out: list[Effect] = []
        calm = not self.stopping
        for pool in self.pools.values():
            for slot in list(pool.slots.values()):
                out += slot.tick(now, wall, self.policy)
                calm = calm and slot.phase in _CALM
        budget = [START_BATCH]
        for pool in self.pools.values():
            out += pool.reconcile(now, self.policy, self.log_level, stopping=self.stopping, forced=self.forced,
                                  budget=budget)
            if pool.history.due(now):
                rate = 0.0
                for slot in pool.slots.values():
                    if slot.worker_pid is None or (slot.hb is not None and wall - slot.hb.time > STALE_AFTER):
                        slot.meter.rate = 0.0
                    rate += slot.meter.rate
                pool.history.append(now, rate)
        if not self.broker.embedded:
            self._external_broker_state(wall)
        self.calm = calm and not out
        self.backlog = budget[0] <= 0  # starts were held back: tick again at once
        return self.absorb(out, wall)

    def begin_stop(self, now: float, wall: float) -> list[Effect]:
        """Stop the fleet: every worker finishes the message in hand and disconnects keeping its session."""
        if self.stopping:
            return []
        self.stopping = True
        self.note("INFO", "fleet", "stopping: each worker finishes its message and keeps its session, so the "
                                   "broker queues what arrives until the next start", wall)
        out: list[Effect] = []
        for slot in self.slots():
            out += slot.stop(now, self.policy)
        return self.absorb(out, wall)

    def layout(self) -> dict[str, list[int]]:
        """Slot indices per route: what the next start must resume or release."""
        return {name: sorted(pool.slots) for name, pool in self.pools.items()}

    def adopt(self, layout: dict[str, list[int]], now: float, wall: float) -> list[Effect]:
        """Slots a previous run left (a scale-up not saved, a stop mid-drain, a SIGKILL): those beyond the
        desired count get their sessions released, so nothing stays queued where no worker will look."""
        out: list[Effect] = []
        for name, indices in layout.items():
            pool = self.pools.get(name)
            if pool is None:
                self.note("WARNING", "fleet", f"route '{name}' of the previous run is gone from the config; "
                                              f"messages its sessions hold stay with the broker", wall)
                continue
            for index in indices:
                if index >= pool.desired and index not in pool.slots:
                    slot = Slot(name, index, f"{self.prefix}-{name}-{index}", self.log_level)
                    pool.slots[index] = slot
                    if pool.desired == 0:  # a paused route stays paused: its sessions keep what they hold
                        out += slot.pause(now, self.policy)
                        continue
                    self.note("INFO", "fleet", f"{slot.id}: left over from the previous run; releasing its "
                                               f"session to the live workers", wall)
                    out += slot.retire(now, self.policy)
        return self.absorb(out, wall)

    def set_broker(self, state: BrokerState, reason: str = "", *, pid: int | None = None,
                   restarts: int | None = None, host: str | None = None, port: int | None = None,
                   unix_path: str | None = None, tcp: bool | None = None) -> None:
        """What the broker keeper learned."""
        b = self.broker
        b.state, b.reason, b.pid = state, reason, pid
        if restarts is not None:
            b.restarts = restarts
        if host is not None:
            b.host = host
        if port is not None:
            b.port = port
        if unix_path is not None:
            b.unix_path = unix_path
        if tcp is not None:
            b.tcp = tcp

    def _external_broker_state(self, wall: float) -> None:
        if self.broker.state is BrokerState.AUTH_FAILED:
            return
        beats = [s.hb for s in self.slots() if s.worker_pid is not None and s.hb is not None]
        if not beats:
            return
        state = BrokerState.UP if any(hb.connected for hb in beats) else BrokerState.DOWN
        if state != self.broker.state:
            if state is BrokerState.DOWN:
                self.note("ERROR", "broker", f"no worker is connected to {self.broker.host}:{self.broker.port}", wall)
            self.broker.state = state
