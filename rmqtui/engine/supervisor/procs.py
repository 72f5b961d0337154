"""The only code that spawns, signals and joins worker processes (plus a fake for tests and the demo).

A :class:`ProcessRunner` owns one selector for the fleet's life: every worker's pipe
and exit sentinel, and a wake pipe.  ``wait()`` returns what happened as plain
records (:class:`Received`, :class:`Ended`); the engine applies them to the pure
core under its lock and hands the resulting effects back here, outside the lock.
With the fork server it also keeps one spare process started ahead of need:
:meth:`ProcessRunner.spawn` hands it the next slot instead of forking.
"""

from __future__ import annotations

import multiprocessing
import os
import selectors
import signal as signal_mod
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, NamedTuple

from ..logfiles import rotate_if_big
from ..protocol import WORKER_PROCESS_PREFIX, WorkerSpec


def start_method() -> str:
    """The multiprocessing start method for workers: forkserver, which is safe with threads
    and, with the worker module preloaded, starts a worker in a few milliseconds."""
    return os.environ.get("RMQTUI_START_METHOD", "forkserver")


def spare_wanted() -> bool:
    """Whether to keep a spare worker process: with the fork server, where a spare is a small fork of
    it, unless ``RMQTUI_SPARE_WORKER=0`` (a cold start per slot, as with the other start methods)."""
    return start_method() == "forkserver" and os.environ.get("RMQTUI_SPARE_WORKER", "1") != "0"


class Started(NamedTuple):
    """A started process, the supervisor's end of its pipe, and its shared "message in hand" value."""

    proc: Any
    conn: Any
    mid: Any


class Received(NamedTuple):
    """A message from the worker of slot ``key``."""

    key: str
    message: Any


class Ended(NamedTuple):
    """The process of slot ``key`` ended: exit code (negative = signal), last stderr line, mid in hand."""

    key: str
    code: int | None
    tail: str
    mid: int


def stderr_tail(path: str | None, limit: int = 200) -> str:
    """The last non-empty line of a worker's stderr file, cut to ``limit`` characters."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip()[:limit] if lines else ""


def _attempt(call: Callable, *args: Any) -> Any:
    """``call(*args)``, or the exception it raised (one failed start must not lose the others)."""
    try:
        return call(*args)
    except Exception as exc:  # noqa: BLE001 - handed back to the caller, which reports it per slot
        return exc


def _untrack(proc: Any) -> None:
    """Take ``proc`` off multiprocessing's own list of children.

    ``Process.start()`` first polls every child on that list (each poll builds a selector), so
    with a thousand workers each start cost tens of milliseconds more than the one before (a
    1,000-worker fleet took 139 s to start).  The runner watches and reaps its processes itself."""
    children = getattr(multiprocessing.process, "_children", None)
    if isinstance(children, set):
        children.discard(proc)


class ProcessRunner:
    """Worker processes of one fleet, keyed by slot id."""

    #: seconds without a spawn before a new spare is started: a burst of spawns (a fleet's start, a
    #: scale-up) is not slowed down by it, and the spare's start-up does not compete with a new worker's
    SPARE_DELAY = 0.1
    #: processes started at once by :meth:`spawn_many` (a fleet's start, a large scale-up)
    SPAWN_THREADS = 4

    def __init__(self, target: Callable, preload: tuple[str, ...] = (), spare: Callable | None = None) -> None:
        """``spare(target, conn, mid)`` runs in a spare process: it waits for a spec, then calls ``target``."""
        self._target = target
        self._spare_target = spare if spare_wanted() else None
        self._spare: Started | None = None
        self._spare_due = 0.0  # monotonic time from which a spare may be started
        self._ctx = multiprocessing.get_context(start_method())
        self._preload = list(preload)
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._procs: dict[str, Any] = {}
        self._conns: dict[str, Any] = {}
        self._logs: dict[str, str | None] = {}
        self._mids: dict[str, Any] = {}
        self._pool: ThreadPoolExecutor | None = None

    def prepare(self) -> None:
        """Start the fork server now, from the caller's thread: a front end (Textual) may later replace
        ``sys.stderr`` with an object without a file descriptor, and the fork server cannot start then."""
        if start_method() == "forkserver":
            from multiprocessing import forkserver

            self._ctx.set_forkserver_preload(self._preload)
            forkserver.ensure_running()

    def spawn(self, key: str, spec: WorkerSpec) -> int:
        """Start a process for slot ``key``, or hand the slot to the spare; returns its pid (raises OSError
        and friends on failure)."""
        rotate_if_big(spec.log_file)  # rotated like fleet.log, before the new process appends
        self._spare_due = time.monotonic() + self.SPARE_DELAY
        started = self._from_spare(spec)
        if started is None:
            started = self._start(self._target, (spec,), key, self._mids.get(key))
        return self._watch(key, spec, started)

    def spawn_many(self, items: list[tuple[str, WorkerSpec]]) -> list:
        """:meth:`spawn` for each ``(key, spec)``; with the fork server several start side by side (each
        waits for the server's fork, which then overlaps with the next one's set-up).  Each entry of the
        result is the pid, or the exception its start raised."""
        out = [_attempt(self.spawn, *items[0])] if items else []  # the first may take the spare
        if len(items) < 2 or start_method() != "forkserver":
            return out + [_attempt(self.spawn, key, spec) for key, spec in items[1:]]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.SPAWN_THREADS, thread_name_prefix="rmqtui-spawn")
        for _, spec in items[1:]:
            rotate_if_big(spec.log_file)
        futures = [self._pool.submit(self._start, self._target, (spec,), key, self._mids.get(key))
                   for key, spec in items[1:]]
        for (key, spec), future in zip(items[1:], futures):
            started = _attempt(future.result)
            out.append(started if isinstance(started, BaseException) else self._watch(key, spec, started))
        self._spare_due = time.monotonic() + self.SPARE_DELAY
        return out

    def _watch(self, key: str, spec: WorkerSpec, started: Started) -> int:
        started.proc.name = f"{WORKER_PROCESS_PREFIX}{key}"  # a spare's, from now on
        self._procs[key], self._conns[key], self._mids[key] = started
        self._logs[key] = spec.log_file
        self._sel.register(started.proc.sentinel, selectors.EVENT_READ, (key, "exit"))
        self._sel.register(started.conn, selectors.EVENT_READ, (key, "msg"))
        return started.proc.pid

    def _start(self, target: Callable, args: tuple, key: str, mid: Any = None) -> Started:
        """Start ``target(*args, conn, mid)`` in a new process (a slot's "message in hand" value is kept
        across its processes; a spare gets its own)."""
        mid = mid if mid is not None else self._ctx.RawValue("i", 0)
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=target, args=(*args, child, mid), name=f"{WORKER_PROCESS_PREFIX}{key}")
        try:
            proc.start()
        except BaseException:
            parent.close()
            child.close()
            raise
        child.close()
        _untrack(proc)
        return Started(proc, parent, mid)

    def _from_spare(self, spec: WorkerSpec) -> Started | None:
        """The spare, told its slot's spec; ``None`` without a usable spare (the caller starts a process)."""
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        self._unwatch(spare.proc.sentinel)
        try:
            spare.conn.send(spec)
        except Exception:  # noqa: BLE001 - a spare that cannot take it is let go; a cold start follows
            self._end_spare(spare)
            return None
        return spare

    def _refill(self) -> None:
        """Start a spare when none waits and no spawn happened for :attr:`SPARE_DELAY`: its fork and
        interpreter set-up are then behind the next add, restart or scale-up, which only sends it a spec."""
        if self._spare is not None or self._spare_target is None or time.monotonic() < self._spare_due:
            return
        try:
            self._spare = self._start(self._spare_target, (self._target,), "spare")
        except Exception:  # noqa: BLE001 - no spare: spawns start cold, and their failure is reported
            self._spare_due = time.monotonic() + 1.0
            return
        self._sel.register(self._spare.proc.sentinel, selectors.EVENT_READ, ("", "spare"))

    def _end_spare(self, spare: Started | None) -> None:
        """Let a spare go: it holds no slot and no session, so it is killed, not drained."""
        if spare is None:
            return
        self._unwatch(spare.proc.sentinel)
        spare.conn.close()
        try:
            os.kill(spare.proc.pid, signal_mod.SIGKILL)
        except ProcessLookupError:
            pass
        spare.proc.join(1.0)
        if spare.proc.exitcode is not None:
            spare.proc.close()

    def signal(self, key: str, pid: int, sig: int) -> None:
        """Send ``sig`` to slot ``key``'s process if ``pid`` is still it."""
        proc = self._procs.get(key)
        if proc is None or proc.pid != pid:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def send(self, key: str, message: Any) -> None:
        """Send a protocol message to slot ``key``'s process (dropped when the pipe is gone)."""
        conn = self._conns.get(key)
        if conn is None:
            return
        try:
            conn.send(message)
        except (OSError, EOFError):
            pass

    def kill_all(self, sig: int = signal_mod.SIGKILL) -> None:
        """Signal every process (a forced stop)."""
        for proc in list(self._procs.values()):
            try:
                os.kill(proc.pid, sig)
            except (ProcessLookupError, TypeError):
                pass

    def wake(self) -> None:
        """Make a running :meth:`wait` return now (safe from any thread)."""
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def wait(self, timeout: float) -> tuple[list, bool]:
        """Block up to ``timeout`` for worker messages and exits; returns (records, woken)."""
        self._refill()
        if self._spare is None and self._spare_target is not None:  # wake up when the next spare is due
            timeout = min(timeout, self._spare_due - time.monotonic())
        out: list = []
        woken = False
        ended = []
        for key_obj, _ in self._sel.select(max(0.0, timeout)):
            data = key_obj.data
            if data is None:
                woken = True
                try:
                    while os.read(self._wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            elif data[1] == "msg":
                # one message per readiness event: the selector is level-triggered and reports the
                # pipe again while data is left, and Connection.poll() would build a selector per call
                self._receive(data[0], out, once=True)
            elif data[1] == "spare":  # the spare ended before it got a slot
                spare, self._spare = self._spare, None
                self._end_spare(spare)
            else:
                ended.append(data[0])
        for key in ended:
            self._receive(key, out, once=False)
            out.append(self._reap(key))
        return out, woken

    def _receive(self, key: str, out: list, *, once: bool) -> None:
        conn = self._conns.get(key)
        if conn is None:
            return
        try:
            if once:
                out.append(Received(key, conn.recv()))
            else:
                while conn.poll():
                    out.append(Received(key, conn.recv()))
        except (EOFError, OSError):
            self._drop_conn(key)

    def _drop_conn(self, key: str) -> None:
        conn = self._conns.pop(key, None)
        if conn is not None:
            self._unwatch(conn)
            conn.close()

    def _reap(self, key: str) -> Ended:
        proc = self._procs.pop(key)
        self._unwatch(proc.sentinel)
        self._drop_conn(key)
        proc.join(0.5)
        code = proc.exitcode
        if code is not None:
            proc.close()
        mid = self._mids[key]
        handling, mid.value = mid.value, 0
        return Ended(key, code, stderr_tail(self._logs.pop(key, None)), handling)

    def _unwatch(self, fileobj: Any) -> None:
        try:
            self._sel.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def busy(self) -> bool:
        """Whether records are waiting without a wait (never for real processes: they come when they come)."""
        return False

    def pids(self) -> list[int]:
        """pids of every process the runner started and has not reaped."""
        return [p.pid for p in self._procs.values()]

    def close(self) -> None:
        """End the spare, release the selector and the wake pipe, and stop the fork server helpers."""
        spare, self._spare, self._spare_target = self._spare, None, None
        self._end_spare(spare)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._sel.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if start_method() != "forkserver":
            return
        from multiprocessing import forkserver, resource_tracker

        # private but stable since 3.8: the helpers end with our process anyway; stopping them
        # here makes `stop()` leave no child behind, which is what embedders and tests expect
        for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
            stop = getattr(helper, "_stop", None)
            if stop is not None:
                try:
                    stop()
                except (OSError, ChildProcessError, TypeError):  # TypeError: helper never started
                    pass
