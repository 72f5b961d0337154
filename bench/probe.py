"""Per-process message counter shared by the bare subscriber and the benchmark handlers.

``Probe.hit()`` is the only per-message work: a clock read, a counter, optionally a
CPU burn of a fixed number of milliseconds (thread CPU time, not wall time).  A daemon
thread writes ``count first last`` to a status file every 50 ms (only when it changed),
so the benchmark can see progress without any per-message IPC.  ``first`` is the time
of the first message after an idle gap of more than ``gap`` seconds, i.e. the start of a
repetition.
"""

from __future__ import annotations

import os
import threading
import time

_clock = time.time
_cpu = time.thread_time


class Probe:
    def __init__(self, path: str, burn_ms: float = 0.0, interval: float = 0.05, gap: float = 1.0) -> None:
        self.path = path
        self.burn = burn_ms / 1000.0
        self.gap = gap
        self.count = 0
        self.base = 0
        self.first = 0.0
        self.last = 0.0
        self._interval = interval
        threading.Thread(target=self._loop, name="bench-probe", daemon=True).start()

    def hit(self) -> None:
        now = _clock()
        if now - self.last > self.gap:
            self.first = now
            self.base = self.count
        if self.burn:
            end = _cpu() + self.burn
            while _cpu() < end:
                pass
            now = _clock()
        self.count += 1
        self.last = now

    def _loop(self) -> None:
        tmp = self.path + ".tmp"
        written = None
        while True:
            state = (self.count, self.first, self.last, self.base)
            if state != written:
                with open(tmp, "w") as f:
                    f.write("%d %r %r %d\n" % state)
                os.replace(tmp, self.path)
                written = state
            time.sleep(self._interval)


def read_status(path: str) -> tuple[int, float, float, int] | None:
    """``(count, first, last, base)`` from a status file, or None while it does not exist."""
    try:
        with open(path) as f:
            parts = f.read().split()
        return int(parts[0]), float(parts[1]), float(parts[2]), int(parts[3])
    except (OSError, ValueError, IndexError):
        return None
