"""The small typed messages between the supervisor and its workers.

Each worker has exactly one duplex pipe to the supervisor.  Workers send a
:class:`Heartbeat` a few times a second, a :class:`Status` when their state
changes and :class:`LogLine` records at or above their level; the supervisor
sends :class:`SetLogLevel`, :class:`Drain` and :class:`Stop`.  Nothing is sent
per message (except debug records when an operator asked for them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

#: Exit status of a worker that cannot serve (handler import failed, bad
#: settings): the supervisor marks the slot ``failed`` and does not restart it.
EXIT_FAILED = 3

#: Exit status of a worker whose MQTT network thread died (an exception inside a paho
#: callback): a crash like any other, restarted with backoff, never left alive but deaf.
EXIT_NETWORK = 4

#: Start of every worker process's multiprocessing name (the fork server treats those processes as its own).
WORKER_PROCESS_PREFIX = "rmqtui-worker-"


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """How a worker reaches the broker (picklable; the password travels in memory only)."""

    host: str
    port: int
    protocol: str = "v3.1.1"
    username: str = ""
    password: str = field(default="", repr=False)
    keepalive: int = 30
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    unix_path: str | None = None  # connect to this unix socket (paho transport "unix") instead of host:port


def broker_settings(broker, host: str | None = None, port: int | None = None,
                    unix_path: str | None = None) -> BrokerSettings:
    """Connection settings from a ``BrokerConfig``: how any client of the fleet reaches its broker.

    ``host``/``port`` override the file's (a command-line override); ``unix_path`` is the embedded
    broker's private socket, which every client of a fleet with one uses instead of TCP.
    """
    tls = broker.tls
    return BrokerSettings(host=host or broker.host, port=port or broker.port, protocol=broker.protocol,
                          username=broker.username, password=broker.password, keepalive=broker.keepalive,
                          tls_ca=tls.ca if tls else None, tls_cert=tls.cert if tls else None,
                          tls_key=tls.key if tls else None, tls_insecure=tls.insecure if tls else False,
                          unix_path=unix_path)


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker process needs to start; built by the supervisor per process."""

    worker_id: str
    route: str
    slot: int
    client_id: str
    pattern: str
    subscribe_filter: str
    handler: str
    qos: int
    root: str
    broker: BrokerSettings
    log_level: str = "INFO"
    heartbeat_interval: float = 1.0
    idle_heartbeat_interval: float = 1.0  # an idle worker (nothing changed) beats only this often
    handler_retries: int = 2
    dead_letter_topic: str = "rmqtui/dead/{route}"
    poison_mids: frozenset[int] = frozenset()
    log_file: str | None = None
    # a rescue: under the slot's id, leave the group, hand the session's backlog on, end the session
    release_only: bool = False
    session_expiry: int = 7 * 24 * 3600  # seconds the slot's v5 session outlives its connection
    release_idle_timeout: float = 15.0  # a rescue that makes no progress this long gives up, keeping the session
    concurrency: int = 1  # handler calls in flight at once (async def handlers only)
    # run handlers on a thread of their own instead of paho's network thread (see worker/main.py)
    handler_thread: bool = False

    @property
    def marker_topic(self) -> str:
        """A topic only this slot subscribes to, used to find the end of its backlog."""
        return f"rmqtui/drain/{self.client_id}"


#: Upper bounds (seconds) of the handler-duration buckets a worker counts (one more bucket: longer);
#: /metrics sums them per route into a histogram.
DURATION_BOUNDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


class Heartbeat(NamedTuple):
    """Counters since the process started, and what it is doing now.

    The messages workers send many times a second are named tuples: they unpickle several
    times faster than frozen slotted dataclasses, which matters with a hundred workers.
    """

    time: float
    received: int
    handled: int
    failed: int
    dead_lettered: int
    handler_seconds: float
    busy_since: float | None  # wall time when the oldest handler call under way began
    connected: bool
    published: int = 0  # messages the handler published (msg.publish / msg.reply)
    in_flight: int = 0  # handler calls under way
    skipped: int = 0  # dead letters delivered to the route: acknowledged, never handled
    handed_on: int = 0  # rescue: queued messages republished to the group before the session ended
    redelivered: int = 0  # messages that arrived with the DUP flag: the broker sent them before
    poisoned: int = 0  # dead letters of messages that crashed the process repeatedly (of dead_lettered)
    durations: tuple[int, ...] = ()  # handler calls per duration bucket (DURATION_BOUNDS, then longer)


class Status(NamedTuple):
    """A state change of the worker, sent the moment it happens."""

    state: str  # a WorkerState value
    reason: str = ""
    time: float = 0.0


class LogLine(NamedTuple):
    """One log record from the worker."""

    time: float
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class SetLogLevel:
    """Change the worker's log level live."""

    level: str


@dataclass(frozen=True, slots=True)
class Drain:
    """Unsubscribe, handle the backlog up to a marker, end the session and exit.

    With ``keep_session`` the worker stops after its current message without
    unsubscribing, so a new process under the same client id resumes the
    session and everything queued for it (used by restarts).
    """

    timeout: float = 10.0
    keep_session: bool = False
