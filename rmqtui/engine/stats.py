"""psutil sampling of worker processes, off the supervision path.

One :class:`ProcessSampler` runs in its own thread.  It keeps a cached
``psutil.Process`` and the last CPU time per pid (CPU % needs two readings, so
a new process shows None until its second pass) and reads the cheap figures every
pass; USS costs a read of the memory summary, so it is refreshed for a few
processes per pass, round robin.  Every per-pid cache is pruned to the pids of
the pass, and a pid that now names another process (its start time changed)
starts from scratch, so a reused pid never inherits an old CPU baseline.

It also samples its own process, so the supervisor's CPU and memory come from here
too: this is the only engine module that touches psutil and /proc.
"""

from __future__ import annotations

import os
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
    cpu_seconds: float | None = None  # user + system CPU time of the process so far


#: passes between two counts of one process's open fds (listing /proc/PID/fd costs as much as the rest)
FDS_EVERY = 3
#: passes between two samples of an idle worker (one that handles nothing): 100 idle workers cost a quarter
IDLE_EVERY = 4


class ProcessSampler:
    """Samples a changing set of pids at a fixed interval in a daemon thread."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval: float = 1.0, uss_per_pass: int = 4,
                 busy: Callable[[], frozenset[int]] | None = None) -> None:
        self._pids = pids
        self._busy = busy  # pids that handle messages now: sampled every pass, the idle rest every IDLE_EVERY
        self.interval = interval
        self.uss_per_pass = uss_per_pass
        self._procs: dict[int, psutil.Process] = {}
        self._uss: dict[int, int | None] = {}
        self._fds: dict[int, int] = {}  # open fds per pid, recounted every FDS_EVERY passes (a directory read)
        self._pass = 0
        self._created: dict[int, float] = {}
        self._cpu: dict[int, tuple[float, float]] = {}
        self._samples: dict[int, ProcessSample] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._uss_cursor = 0
        self.last_pass_seconds = 0.0
        self.own: ProcessSample | None = None  # this process, refreshed every pass

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
            n = self.sample_once()
            self.last_pass_seconds = time.perf_counter() - started
            # re-arm only after a pass finished, so passes never overlap; a large fleet is sampled
            # less often (100 workers: every 2 s) so sampling stays around 1 % of a core
            period = max(self.interval, n / 50.0)
            self._stop.wait(max(0.05, period - self.last_pass_seconds))

    def sample_once(self) -> int:
        """One pass over the current pids; returns how many were sampled."""
        pids = list(self._pids())
        alive = set(pids) | {os.getpid()}  # our own figures are sampled too
        self._pass += 1
        for cache in (self._procs, self._uss, self._created, self._cpu, self._fds):
            for gone in [p for p in cache if p not in alive]:
                del cache[gone]
        uss_due = set()
        if pids:
            n = min(self.uss_per_pass, len(pids))
            start = self._uss_cursor % len(pids)
            uss_due = {pids[(start + i) % len(pids)] for i in range(n)}
            self._uss_cursor = start + n
        samples: dict[int, ProcessSample] = {}
        busy = self._busy() if self._busy is not None else None
        for pid in pids:
            if busy is not None and pid not in busy and (self._pass + pid) % IDLE_EVERY and pid in self._samples:
                samples[pid] = self._samples[pid]  # idle: its figures barely move, its CPU % is an average anyway
                continue
            try:
                sample = self._sample(pid, pid in uss_due or pid not in self._uss)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, FileNotFoundError, ProcessLookupError):
                self._procs.pop(pid, None)
                continue
            except (psutil.AccessDenied, PermissionError):
                sample = ProcessSample(None, None, None, None, None, None, None)
            samples[pid] = sample
        try:
            own = self._sample(os.getpid(), False)
        except (psutil.Error, OSError):
            own = None
        with self._lock:
            self._samples = samples
            self.own = own
        return len(pids)

    def cache_sizes(self) -> dict[str, int]:
        """How many pids each cache holds (tests check that they are pruned)."""
        return {"procs": len(self._procs), "uss": len(self._uss), "created": len(self._created),
                "cpu": len(self._cpu), "fds": len(self._fds), "samples": len(self._samples)}

    def _sample(self, pid: int, want_uss: bool) -> ProcessSample:
        now = time.monotonic()
        if _PROC_STAT:
            # one read of /proc/PID/stat gives CPU times, threads and RSS: a third of psutil's cost
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rpartition(b") ")[2].split()
            used = (int(fields[11]) + int(fields[12])) / _CLK_TCK
            threads = int(fields[17])
            rss = int(fields[21]) * _PAGE
            fds = self._fds.get(pid)
            if fds is None or (self._pass + pid) % FDS_EVERY == 0:  # spread over passes, not all at once
                fds = self._fds[pid] = len(os.listdir(f"/proc/{pid}/fd"))
            created = _BOOT_TIME + int(fields[19]) / _CLK_TCK
            proc = None
        else:
            proc = self._procs.get(pid)
            if proc is None or not proc.is_running():  # is_running() also notices a reused pid
                proc = self._procs[pid] = psutil.Process(pid)
            created = proc.create_time()
            with proc.oneshot():
                times = proc.cpu_times()
                rss = proc.memory_info().rss
                threads = proc.num_threads()
            fds = proc.num_fds() if hasattr(proc, "num_fds") else None
            used = times.user + times.system
        if self._created.get(pid) != created:  # a new process under this pid: forget the old one's figures
            self._created[pid] = created
            self._cpu.pop(pid, None)
            self._uss.pop(pid, None)
            if _PROC_STAT and self._fds.get(pid) is not None:
                fds = self._fds[pid] = len(os.listdir(f"/proc/{pid}/fd"))
            want_uss = want_uss or pid != os.getpid()
        # CPU % of one core since the last pass; None on the first pass, there is no interval yet
        last = self._cpu.get(pid)
        self._cpu[pid] = (now, used)
        cpu = (round(max(0.0, 100.0 * (used - last[1]) / (now - last[0])), 1)
               if last and now > last[0] else None)
        if want_uss:
            self._uss[pid] = unique_set_size(proc or psutil.Process(pid))
        return ProcessSample(cpu, rss, self._uss.get(pid), fds, threads, created, used)


_PROC_STAT = os.path.exists(f"/proc/{os.getpid()}/stat") and os.path.isdir(f"/proc/{os.getpid()}/fd")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_BOOT_TIME = psutil.boot_time()


def unique_set_size(proc: psutil.Process) -> int | None:
    """USS in bytes: the memory only this process uses.

    Reads ``/proc/PID/smaps_rollup`` (one summary the kernel keeps) where it exists, five
    times cheaper than psutil's walk of every mapping; falls back to psutil elsewhere.
    """
    try:
        with open(f"/proc/{proc.pid}/smaps_rollup", "rb") as f:
            total = 0
            for line in f:
                if line.startswith((b"Private_Clean:", b"Private_Dirty:", b"Private_Hugetlb:")):
                    total += int(line.split()[1]) * 1024
            return total
    except FileNotFoundError:
        if not psutil.pid_exists(proc.pid):
            raise psutil.NoSuchProcess(proc.pid) from None
    except PermissionError:
        raise psutil.AccessDenied(proc.pid) from None
    return proc.memory_full_info().uss


def host_cpu_fraction() -> float | None:
    """Busy fraction of all the host's cores since the previous call (None on the first call)."""
    global _host_cpu_primed
    value = psutil.cpu_percent(None)
    if not _host_cpu_primed:
        _host_cpu_primed = True
        return None
    return value / 100.0


_host_cpu_primed = False
