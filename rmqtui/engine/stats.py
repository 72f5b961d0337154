"""psutil sampling of worker processes, off the supervision path.

One :class:`ProcessSampler` runs in its own thread.  It keeps a cached
``psutil.Process`` per pid (the first ``cpu_percent`` of a new object is always
0.0, so objects must live across passes) and reads the cheap figures every
pass; USS needs a walk of the memory maps, so it is refreshed for a few
processes per pass, round robin.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import psutil


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """Resource figures of one process at one pass; a figure that could not be read is None."""

    cpu_percent: float | None
    rss: int | None
    uss: int | None
    fds: int | None
    threads: int | None
    create_time: float | None


class ProcessSampler:
    """Samples a changing set of pids at a fixed interval in a daemon thread."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval: float = 1.0, uss_per_pass: int = 8) -> None:
        self._pids = pids
        self.interval = interval
        self.uss_per_pass = uss_per_pass
        self._procs: dict[int, psutil.Process] = {}
        self._uss: dict[int, int] = {}
        self._samples: dict[int, ProcessSample] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._uss_cursor = 0
        self.last_pass_seconds = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rmqtui-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def get(self, pid: int | None) -> ProcessSample | None:
        """The latest sample of ``pid``, if any."""
        if pid is None:
            return None
        with self._lock:
            return self._samples.get(pid)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self.sample_once()
            self.last_pass_seconds = time.perf_counter() - started
            # re-arm only after a pass finished, so passes never overlap
            self._stop.wait(max(0.05, self.interval - self.last_pass_seconds))

    def sample_once(self) -> None:
        """One pass over the current pids."""
        pids = list(self._pids())
        alive = set(pids)
        for gone in [p for p in self._procs if p not in alive]:
            self._procs.pop(gone, None)
            self._uss.pop(gone, None)
        uss_due = set()
        if pids:
            n = min(self.uss_per_pass, len(pids))
            start = self._uss_cursor % len(pids)
            uss_due = {pids[(start + i) % len(pids)] for i in range(n)}
            self._uss_cursor = start + n
        samples: dict[int, ProcessSample] = {}
        for pid in pids:
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                    proc.cpu_percent(None)
                with proc.oneshot():
                    cpu = proc.cpu_percent(None)
                    rss = proc.memory_info().rss
                    fds = proc.num_fds()
                    threads = proc.num_threads()
                    created = proc.create_time()
                if pid in uss_due or pid not in self._uss:
                    self._uss[pid] = proc.memory_full_info().uss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                self._procs.pop(pid, None)
                continue
            except psutil.AccessDenied:
                samples[pid] = ProcessSample(None, None, None, None, None, None)
                continue
            samples[pid] = ProcessSample(cpu, rss, self._uss.get(pid), fds, threads, created)
        with self._lock:
            self._samples = samples
