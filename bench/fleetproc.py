"""``rmqtui --no-ui --json`` as a child process, observed through its JSON stream only.

Readiness comes from the snapshot lines of the ``--json`` stream (one JSON object per
line): the fleet is ready when every route has as many workers in state ``subscribed``
(with a pid) as it desires.  Log lines (``{"log": {...}}``) and snapshots are kept in a
short history so a timeout can say what the fleet was doing.  Human status text is never
parsed: it is for people and changes with the UI.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil


def summarize(obj: dict) -> str:
    """One short line for a stream object: a snapshot becomes counts per route and state."""
    if "log" in obj:
        rec = obj["log"]
        return f"log {rec.get('level')} {rec.get('source')}: {str(rec.get('message'))[:200]}"
    states: dict = collections.Counter(w.get("state") for w in obj.get("workers", ()))
    routes = ", ".join(f"{r.get('name')} {r.get('running')}/{r.get('desired')}" for r in obj.get("routes", ()))
    stamp = time.strftime("%H:%M:%S", time.localtime(obj.get("time", 0)))
    return f"snapshot {stamp}: routes {routes}; worker states {dict(states)}"


def ready(obj: dict) -> bool:
    """Every route has ``desired`` workers subscribed with a pid (and at least one route exists)."""
    routes = obj.get("routes") or []
    if not routes:
        return False
    subscribed: dict = collections.Counter(w.get("route") for w in obj.get("workers", ())
                                           if w.get("state") == "subscribed" and w.get("pid"))
    return all(subscribed.get(r.get("name"), 0) == r.get("desired") for r in routes)


def thread_cpu(pid: int) -> tuple[float, float]:
    """(whole process, main thread) CPU seconds; the main thread of ``rmqtui --no-ui`` is the front end."""
    p = psutil.Process(pid)
    t = p.cpu_times()
    main = next((th.user_time + th.system_time for th in p.threads() if th.id == pid), 0.0)
    return t.user + t.system, main


class HeadlessFleet:
    """One ``rmqtui --no-ui --json`` process on a config: start, wait until ready, measure, stop."""

    def __init__(self, exe: str, config: Path, *, interval: float = 1.0, env: dict | None = None) -> None:
        self.config = config
        self.launched = time.time()
        self._t0 = time.monotonic()
        self._stderr = open(config.parent / "headless.err", "w")
        self.proc = subprocess.Popen([exe, "--no-ui", "--json", "--interval", str(interval), "-c", str(config)],
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1,
                                     start_new_session=True, cwd=config.parent, env=env)
        self.history: collections.deque = collections.deque(maxlen=12)
        self.latest: dict | None = None
        self.previous_time: float | None = None  # time of the last snapshot that was not ready
        self.ready_snapshot: dict | None = None
        # longest time without a snapshot line until ready: the front end waited (e.g. on snapshot())
        self.max_gap = 0.0
        self._last_line = time.monotonic()
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="bench-json-stream", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                self.history.append(f"not JSON: {line[:200]}")
                continue
            if not isinstance(obj, dict):
                continue
            self.history.append(summarize(obj))
            if "log" in obj:
                continue
            self.latest = obj
            if self.ready_snapshot is None:
                now = time.monotonic()
                self.max_gap, self._last_line = max(self.max_gap, now - self._last_line), now
                if ready(obj):
                    self.ready_snapshot = obj
                    self._ready.set()
                else:
                    self.previous_time = obj.get("time")

    def wait_ready(self, timeout: float) -> float:
        """Seconds from launch to the first ready snapshot (its own time stamp); raises with the last lines seen."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = (f"rmqtui --no-ui exited with status {self.proc.returncode}" if self.proc.poll() is not None
                       else f"timed out after {timeout:.0f}s")
                raise TimeoutError(f"{why} waiting for every worker of {self.config.name} to be subscribed; "
                                   f"last lines of its --json stream: " + " | ".join(self.history)
                                   + self._stderr_tail())
        return self.ready_snapshot.get("time", time.time()) - self.launched

    def _stderr_tail(self) -> str:
        with contextlib.suppress(OSError):
            text = (self.config.parent / "headless.err").read_text()[-600:]
            if text.strip():
                return f" | stderr: {text.strip()}"
        return ""

    def descendants(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.pid).children(recursive=True)
        return []

    def stop(self, timeout: float) -> dict:
        """SIGINT, wait up to ``timeout``; then kill whatever is left and say how much that was."""
        tree = self.descendants()
        worker_pids = {w["pid"] for w in (self.latest or {}).get("workers", ()) if w.get("pid")}
        t0 = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
            clean = True
        except subprocess.TimeoutExpired:
            clean = False
        stop_s = time.monotonic() - t0
        if not clean:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait()
        # a worker still alive after the supervisor exited was left behind (count before killing it)
        left = [p for p in tree if _alive(p)]
        left_pids = {p.pid for p in left} | {pid for pid in worker_pids if psutil.pid_exists(pid)
                                              and _alive(psutil.Process(pid))}
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()
        self._stderr.close()
        return {"stop_s": stop_s, "stopped_cleanly": clean, "left_behind": len(left_pids),
                "processes_before_stop": len(tree)}


def _alive(p: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    return False
