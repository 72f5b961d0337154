"""The interface every front end drives: the live :class:`~rmqtui.engine.supervisor.Fleet`
implements it, and so does the fixed-data fleet used for snapshot tests and screenshots.

All commands return at once: they are checked, queued for the supervisor's
reconcile step and answered with a :class:`CommandResult`.  Their effect shows
in the next snapshots.  Only :meth:`FleetControl.save_config` and
:meth:`FleetControl.stop` block, so a UI calls them from a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .snapshot import FleetSnapshot, LogRecord

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
"""The log levels a fleet and its workers accept, most verbose first (the only copy)."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The answer to a command: accepted or refused, with a sentence for the operator."""

    ok: bool
    message: str

    @classmethod
    def accepted(cls, message: str) -> "CommandResult":
        return cls(True, message)

    @classmethod
    def refused(cls, message: str) -> "CommandResult":
        return cls(False, message)


@runtime_checkable
class FleetControl(Protocol):
    """What a front end may read from and ask of a fleet."""

    def start(self) -> None:
        """Start the broker (when embedded) and the workers, and return (raises BrokerError)."""
        ...

    def snapshot(self) -> FleetSnapshot:
        """The latest immutable picture of the fleet (cheap; never blocks on workers)."""
        ...

    def logs_since(self, seq: int) -> list[LogRecord]:
        """Log records with ``record.seq > seq``, oldest first (bounded history)."""
        ...

    def add_worker(self, route: str) -> CommandResult:
        """Raise the desired count of ``route`` by one (refused on a non-shared route)."""
        ...

    def remove_worker(self, route: str, worker: str | None = None) -> CommandResult:
        """Lower the desired count by one and drain ``worker`` (or the highest slot)."""
        ...

    def scale(self, route: str, count: int) -> CommandResult:
        """Set the desired count of ``route``."""
        ...

    def restart_worker(self, worker: str) -> CommandResult:
        """Drain the worker with id ``worker`` and start its slot anew."""
        ...

    def kill_worker(self, worker: str) -> CommandResult:
        """Send SIGKILL to the worker's process (the supervisor then restarts it)."""
        ...

    def set_log_level(self, level: str, worker: str | None = None) -> CommandResult:
        """Change the log level of one worker, or of the whole fleet when ``worker`` is None."""
        ...

    def save_config(self) -> CommandResult:
        """Write the current desired counts back to the config file (blocking file I/O)."""
        ...

    def reload_config(self) -> CommandResult:
        """Re-read the config file and apply worker counts and the log level live (blocking file I/O).

        A file with an error changes nothing and is refused with the error.
        """
        ...

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker keeping its broker session (the broker queues what arrives meanwhile),
        stop the embedded broker and return (blocking)."""
        ...

    def force(self) -> None:
        """Kill every worker now (a second Ctrl-C): a running ``stop()`` then returns without waiting."""
        ...
