"""Immutable views of the fleet that front ends render.

The supervisor builds one :class:`FleetSnapshot` per tick; the TUI and the
headless runner only ever read these objects, so they never need to know how
the numbers were gathered.  A metric that is not known yet is ``None``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class WorkerState(str, enum.Enum):
    """Life cycle of one worker slot, as shown to the operator."""

    STARTING = "starting"
    CONNECTING = "connecting"
    SUBSCRIBED = "subscribed"
    DISCONNECTED = "disconnected"
    DRAINING = "draining"
    STOPPED = "stopped"
    CRASHED = "crashed"
    BACKOFF = "backoff"
    CRASHLOOP = "crashloop"
    FAILED = "failed"
    HUNG = "hung"
    PAUSED = "paused"  # its route is scaled to 0; the broker keeps its session and queues for it

    @property
    def is_problem(self) -> bool:
        """True for states an operator should look at."""
        return self in _PROBLEM_STATES


_PROBLEM_STATES = frozenset(
    {WorkerState.CRASHED, WorkerState.BACKOFF, WorkerState.CRASHLOOP, WorkerState.FAILED, WorkerState.HUNG,
     WorkerState.DISCONNECTED}
)


class BrokerState(str, enum.Enum):
    """What the supervisor knows about the broker."""

    STARTING = "starting"
    UP = "up"
    DOWN = "down"
    RESTARTING = "restarting"
    AUTH_FAILED = "auth-failed"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ExitRecord:
    """One ended process of a slot: when (unix time), its exit code (negative = signal) and the cause."""

    time: float
    code: int | None
    cause: str  # killed from outside, crashed, hung, failed, released, drained, stopped, paused, restarted
    detail: str = ""  # the last line of its stderr, if any


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    """One worker slot at one instant."""

    id: str  # "<route>/<slot>", stable for the life of the slot
    route: str
    slot: int
    client_id: str
    pid: int | None
    state: WorkerState
    reason: str = ""
    received: int = 0
    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    rate: float = 0.0  # handled messages per second, recent
    handler_seconds: float = 0.0  # total time spent inside the handler
    in_flight: int = 0
    cpu_percent: float | None = None
    cpu_seconds: float | None = None  # CPU time of the current process (resets when it restarts)
    rss: int | None = None  # bytes
    uss: int | None = None  # bytes
    fds: int | None = None
    threads: int | None = None
    restarts: int = 0
    started: float | None = None  # unix time its current process started (None: no process); see uptime_at
    log_level: str = "INFO"
    last_exit: int | None = None  # exit code of the previous process; negative = signal
    exits: tuple[ExitRecord, ...] = ()  # the last exits of the slot's processes, oldest first
    restarts_by_reason: tuple[tuple[str, int], ...] = ()  # (exit cause, restarts), sorted by cause
    redelivered: int = 0  # messages the broker delivered again (DUP flag), over every process of the slot
    poisoned: int = 0  # of dead_lettered: messages that crashed the process repeatedly (the rest: handler errors)
    handler_durations: tuple[int, ...] = ()  # handler calls per duration bucket (protocol.DURATION_BOUNDS)

    @property
    def debug(self) -> bool:
        """Whether this worker emits debug records."""
        return self.log_level == "DEBUG"

    def uptime_at(self, now: float) -> float | None:
        """Seconds its current process has run at unix time ``now`` (the snapshot's ``time``).

        The snapshot keeps the start time, not the uptime, so an idle worker's snapshot stays the
        same from one second to the next: the engine reuses it, the control socket sends only the
        workers that changed and the TUI redraws only their rows."""
        return None if self.started is None else max(0.0, now - self.started)

    @property
    def mean_handler_ms(self) -> float | None:
        """Average handler time per message in milliseconds."""
        done = self.handled + self.failed
        return (self.handler_seconds / done * 1000.0) if done else None


@dataclass(frozen=True, slots=True)
class RouteSnapshot:
    """Totals for one route of ``routemq.toml``."""

    name: str
    topic: str  # the pattern as written, e.g. "sensors/{device_id}/data"
    filter: str  # what the workers subscribe to, e.g. "$share/workers/sensors/+/data"
    shared: bool
    qos: int
    desired: int
    running: int
    received: int = 0
    handled: int = 0
    failed: int = 0
    rate: float = 0.0
    history: tuple[float, ...] = ()  # msg/s, one value per second, oldest first (about 60)
    skew: float | None = None  # share skew over the last ~10 s (see engine/skew.py); None: too little traffic
    advice: int | None = None  # the autoscaler's recommended worker count, when the route is autoscaled
    advice_reason: str = ""  # its reason in words ("busy 92% of the time ..."), "" without autoscale


@dataclass(frozen=True, slots=True)
class BrokerSnapshot:
    """The broker the fleet talks to."""

    host: str
    port: int
    embedded: bool
    state: BrokerState
    protocol: str = "v5"
    reason: str = ""
    pid: int | None = None
    restarts: int = 0
    unix_path: str | None = None  # the embedded broker's private socket; clients connect there
    tcp: bool = True  # a TCP listener at host:port (for the embedded broker: listen_tcp, password required)

    @property
    def address(self) -> str:
        """Where the fleet reaches its broker, short enough for any status line: ``unix:<socket file>``
        (plus ``+tcp:port`` when TCP is open too), else ``host:port`` with IPv6 hosts bracketed."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.unix_path:
            name = self.unix_path.rsplit("/", 1)[-1]
            return f"unix:{name}+tcp:{self.port}" if self.tcp else f"unix:{name}"
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One line for the log pane: a supervisor event or a worker's log record."""

    seq: int  # increasing, so a front end can ask for "everything after N"
    time: float  # unix time
    level: str  # "DEBUG", "INFO", "WARNING", "ERROR"
    source: str  # "fleet", "broker" or a worker id such as "sensor-data/0"
    message: str


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """Everything a front end shows, at one instant."""

    time: float
    started: float
    group: str
    config_path: str
    broker: BrokerSnapshot
    routes: tuple[RouteSnapshot, ...]
    workers: tuple[WorkerSnapshot, ...]
    log_level: str = "INFO"  # the fleet-wide level
    stopping: bool = False
    supervisor_pid: int | None = None
    supervisor_cpu: float | None = None
    supervisor_rss: int | None = None
    hostname: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def uptime(self) -> float:
        """Seconds since the fleet started."""
        return max(0.0, self.time - self.started)

    @property
    def rate(self) -> float:
        """Messages handled per second over the whole fleet."""
        return sum(r.rate for r in self.routes)

    @property
    def handled(self) -> int:
        """Messages handled by the whole fleet, restarts included."""
        return sum(r.handled for r in self.routes)

    @property
    def running(self) -> int:
        """Workers with a live process."""
        return sum(r.running for r in self.routes)

    @property
    def desired(self) -> int:
        """Workers the configuration asks for."""
        return sum(r.desired for r in self.routes)

    def route(self, name: str) -> RouteSnapshot | None:
        """The route called ``name``, if any."""
        return next((r for r in self.routes if r.name == name), None)

    def workers_of(self, route: str) -> tuple[WorkerSnapshot, ...]:
        """The workers of one route, by slot."""
        return tuple(w for w in self.workers if w.route == route)
