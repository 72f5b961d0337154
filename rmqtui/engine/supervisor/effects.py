"""A slot's phases, what it asks the caller to do (effects) and how it names the cause of an exit."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Union

from ..protocol import EXIT_FAILED
from .policy import ExitKind, RestartPolicy


class Phase(str, enum.Enum):
    """What the supervisor is doing with a slot."""

    WAITING = "waiting"  # no process; started (or released) when next_start is due
    STARTING = "starting"  # a process was asked for and has not subscribed yet
    SERVING = "serving"  # the process subscribed
    STOPPING = "stopping"  # asked to stop keeping its session (operator restart or fleet stop)
    DRAINING = "draining"  # scale-down: unsubscribe, finish the backlog, end the session
    RELEASING = "releasing"  # a release client runs under the slot's id
    PAUSED = "paused"  # its route is scaled to 0: no process, the broker keeps (and queues for) its session
    FAILED = "failed"  # the handler cannot load; waits for the operator
    GONE = "gone"  # left the pool after its subscription was gone: forget it


@dataclass(frozen=True, slots=True)
class Spawn:
    """Start a process for slot ``key``: a worker, or a release client when ``release``."""

    key: str
    release: bool = False


@dataclass(frozen=True, slots=True)
class Signal:
    """Send ``sig`` to the slot's process ``pid``."""

    key: str
    pid: int
    sig: int


@dataclass(frozen=True, slots=True)
class Send:
    """Send a protocol message to the slot's process."""

    key: str
    message: Any


@dataclass(frozen=True, slots=True)
class Note:
    """A record for the event ring (the core stamps the time)."""

    level: str
    source: str
    message: str


Effect = Union[Spawn, Signal, Send, Note]


def exit_words(code: int | None) -> str:
    """``killed by signal 9`` / ``exited with status 7`` / ``exited``."""
    if code is None:
        return "exited"
    return f"killed by signal {-code}" if code < 0 else f"exited with status {code}"


def exit_cause(code: int | None, before: tuple, gone: bool, stopping: bool, policy: RestartPolicy) -> str:
    """The cause of an exit in the words of the policy (see :class:`ExitRecord`)."""
    phase, pausing, restart, retiring, subscribed, hung, kill_reason = before
    if phase is Phase.RELEASING:
        return "released" if code == 0 else "release failed"
    if phase is Phase.DRAINING:
        return "drained" if gone else "died draining"
    if stopping:
        return "stopped"
    if pausing and not retiring:
        return "paused"
    if phase is Phase.STOPPING and restart:
        return "restarted"
    if kill_reason.startswith("killed by the operator"):
        return "killed by the operator"
    kind = policy.classify(code, subscribed=subscribed, failed_code=EXIT_FAILED, hung=hung)
    if kind is ExitKind.FAILED:
        return "failed"
    if kind is ExitKind.EXTERNAL:
        return "killed from outside"
    return "hung" if hung else "crashed"


#: heartbeat counters a slot keeps across its processes besides its totals (see ``Slot.count``)
EXTRA_COUNTERS = ("redelivered", "poisoned")


def add_buckets(a, b) -> tuple[int, ...]:
    """Two bucket-count sequences added position by position (the shorter one padded with zeros)."""
    if not a:  # a slot whose first process still runs: the common case, once per worker per snapshot
        return tuple(b)
    return tuple((a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(max(len(a), len(b))))
