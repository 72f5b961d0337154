"""A :class:`~.procs.ProcessRunner` without processes, for unit tests and the demo."""

from __future__ import annotations

import collections
import signal as signal_mod
from typing import Any, Callable, NamedTuple

from ..protocol import Drain, Status, WorkerSpec
from .procs import Ended, Received


class Exit(NamedTuple):
    """In a :class:`FakeRunner` script: the process ends with ``code`` (and this stderr tail, mid in hand)."""

    code: int
    tail: str = ""
    mid: int = 0


class FakeRunner:
    """A :class:`ProcessRunner` without processes, for unit tests and the demo.

    ``behave(key, spec)`` says what a new process does, as a list of things to report at once:
    protocol messages (a ``Status``, a ``Heartbeat``) and, optionally, an ``int`` exit code or an
    :class:`Exit` that ends it.  The default subscribes; a release client exits 0.  A ``Drain`` ends the process with
    0, SIGTERM/SIGKILL with the negative signal number.
    """

    def __init__(self, behave: Callable[[str, WorkerSpec], list] | None = None, first_pid: int = 40_000, *,
                 drain_exits: bool = True) -> None:
        self.behave = behave or (lambda key, spec: [0] if spec.release_only else [Status("subscribed")])
        self.drain_exits = drain_exits  # False: a drained process keeps running until ended by hand
        self.next_pid = first_pid
        self.live: dict[str, int] = {}
        self.specs: dict[str, WorkerSpec] = {}
        self.calls: list[tuple] = []
        self.queue: collections.deque = collections.deque()

    def prepare(self) -> None:
        """Nothing to prepare."""

    def spawn_many(self, items: list[tuple[str, WorkerSpec]]) -> list:
        """:meth:`spawn` for each, in order."""
        return [self.spawn(key, spec) for key, spec in items]

    def spawn(self, key: str, spec: WorkerSpec) -> int:
        self.next_pid += 1
        pid = self.next_pid
        self.live[key], self.specs[key] = pid, spec
        self.calls.append(("spawn", key, spec.release_only))
        for item in self.behave(key, spec):
            if isinstance(item, int):
                item = Exit(item)
            self.queue.append(("end", key, pid, tuple(item)) if isinstance(item, Exit) else Received(key, item))
        return pid

    def end(self, key: str, code: int, tail: str = "", mid: int = 0) -> None:
        """Make slot ``key``'s process end with ``code`` (reported by the next :meth:`wait`)."""
        self.queue.append(("end", key, self.live.get(key), (code, tail, mid)))

    def signal(self, key: str, pid: int, sig: int) -> None:
        self.calls.append(("signal", key, sig))
        if self.live.get(key) == pid and sig in (signal_mod.SIGKILL, signal_mod.SIGTERM):
            self.end(key, -sig)

    def send(self, key: str, message: Any) -> None:
        self.calls.append(("send", key, message))
        if isinstance(message, Drain) and key in self.live and self.drain_exits:
            self.end(key, 0)

    def kill_all(self, sig: int = signal_mod.SIGKILL) -> None:
        for key, pid in list(self.live.items()):
            self.signal(key, pid, sig)

    def wake(self) -> None:
        """Nothing blocks."""

    def wait(self, timeout: float) -> tuple[list, bool]:
        out: list = []
        while self.queue:
            item = self.queue.popleft()
            if isinstance(item, Received):
                if item.key in self.live:
                    out.append(item)
                continue
            _, key, pid, what = item
            if pid is None or self.live.get(key) != pid:
                continue  # that process already ended
            code, tail, mid = what if isinstance(what, tuple) else (what, "", 0)
            del self.live[key]
            out.append(Ended(key, code, tail, mid))
        return out, False

    def busy(self) -> bool:
        """Whether records are queued for the next :meth:`wait`."""
        return bool(self.queue)

    def pids(self) -> list[int]:
        return list(self.live.values())

    def close(self) -> None:
        """Nothing to release."""
