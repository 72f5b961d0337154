"""Issue 9 scenarios: nothing the broker acknowledged may be lost to a kill storm, a stop, a supervisor
SIGKILL or a scale-down around dead or stuck workers.  Shared by the pytest suite (short) and run_long.py.

Each scenario returns a :class:`~.harness.Result`: published, handled, dead-lettered, lost, duplicated
per fault window.  Every wait is bounded.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import psutil

from rmqtui.engine.broker import EmbeddedBroker, free_port
from rmqtui.engine.snapshot import WorkerState

from .harness import (ChaosProject, DeadLetters, Fault, Publisher, Result, _finish, route, subscribed, wait_until,
                      worker)

ROOT = Path(__file__).resolve().parents[2]


class ExternalBroker:
    """A Mosquitto the test starts itself (rmqtui connects to it as to any external broker)."""

    def __init__(self, root: Path) -> None:
        self.broker = EmbeddedBroker(root / "external", port=free_port())
        self.broker.start()
        self.port = self.broker.port

    def stop(self) -> None:
        self.broker.stop()


def _project_config(project: ChaosProject, workers: int, external: ExternalBroker | None, **fleet) -> Path:
    broker = {"embedded": False, "port": external.port} if external else {}
    return project.write([route("work", workers)], broker=broker, fleet=fleet or None)


def kill_storm(project: ChaosProject, *, seconds: float = 20.0, workers: int = 4, rate: float = 300.0,
               external: ExternalBroker | None = None, seed: int = 3, log: Callable[[str], None] = print) -> Result:
    """SIGKILL a random worker every 1-1.5 s, crash counts or not: killed from outside, never a crash loop."""
    rng = random.Random(seed)
    fleet = project.start(_project_config(project, workers, external))
    wait_until(lambda: subscribed(fleet, "work", workers), 30, f"{workers} subscribed workers")
    sink = DeadLetters(fleet)
    pub = Publisher(fleet, "work", rate=rate)
    faults: list[Fault] = []
    kills = 0
    try:
        t_start = time.time()
        pub.start()
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            time.sleep(1.0 + 0.5 * rng.random())  # the storm's own pace, not a wait for a condition
            live = [w for w in fleet.snapshot().workers_of("work") if w.pid]
            if live:
                victim = rng.choice(live)
                try:
                    os.kill(victim.pid, signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
        looped = [w.id for w in fleet.snapshot().workers_of("work") if w.state is WorkerState.CRASHLOOP]
        faults.append(Fault("(storm over)", time.time(), note=f"{kills} kills; crash-looping: {looped or 'none'}"))
        wait_until(lambda: subscribed(fleet, "work", workers), 30, "every slot serving again")
        log(f"  kill storm: {kills} kills, crash-looping slots {looped}")
    finally:
        result = _finish(project, pub, sink, "work", faults, t_start, fleet, quiet=5.0, timeout=60.0)
        sink.close()
    result.crash_looping = looped
    return result


def stop_and_restart(project: ChaosProject, *, rate: float = 300.0, workers: int = 3,
                     external: ExternalBroker | None = None, log: Callable[[str], None] = print) -> Result:
    """A clean stop while messages arrive, then a new rmqtui on the same config: the sessions resume."""
    path = _project_config(project, workers, external)
    fleet = project.start(path)
    wait_until(lambda: subscribed(fleet, "work", workers), 30, f"{workers} subscribed workers")
    port = fleet.broker_settings()  # kept across the restart: same config, same socket
    sink = DeadLetters(port)
    pub = Publisher(port, "work", rate=rate)
    faults: list[Fault] = []
    try:
        t_start = time.time()
        pub.start()
        wait_until(lambda: len(project.handled("work")) > rate, 30, "throughput")
        faults.append(Fault("stop under load", time.time()))
        t0 = time.monotonic()
        fleet.stop(timeout=10)
        project.fleets.remove(fleet)
        faults[-1].note = f"stopped in {time.monotonic() - t0:.2f}s, sessions kept"
        time.sleep(1.0)  # rmqtui is down for a moment while the publisher goes on (external broker)
        faults.append(Fault("restart", time.time()))
        t0 = time.monotonic()
        again = project.start(path)
        wait_until(lambda: subscribed(again, "work", workers), 30, "the same slots serving again")
        faults[-1].recover = time.monotonic() - t0
        faults[-1].note = "same config, same client ids"
        time.sleep(2.0)  # publishing on against the restarted fleet
        fleet = again
        log(f"  stop/restart: {faults[0].note}; back in {faults[1].recover:.2f}s")
    finally:
        result = _finish(project, pub, sink, "work", faults, t_start, fleet, quiet=5.0, timeout=60.0)
        sink.close()
    return result


def sigkill_supervisor(project: ChaosProject, *, rate: float = 300.0, workers: int = 3,
                       external: ExternalBroker | None = None, log: Callable[[str], None] = print) -> Result:
    """``rmqtui --no-ui`` SIGKILLed under load, then started again on the same config."""
    path = _project_config(project, workers, external)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "rmqtui.cli", "--no-ui", "--json", "--interval", "0.5", "-c", str(path)]
    from rmqtui.testing.mqtt import of_config

    port = of_config(path)  # the fleet's broker, reached like its own clients do

    def launch():
        out = open(project.root / "headless.out", "a")
        p = subprocess.Popen(cmd, cwd=project.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        out.close()
        return p

    def serving(proc) -> bool:
        kids = psutil.Process(proc.pid).children(recursive=True)
        return len(kids) >= workers and (project.root / "headless.out").read_text().count('"subscribed"') > 0

    proc = launch()
    pub = sink = None
    faults: list[Fault] = []
    procs = []
    try:
        wait_until(lambda: serving(proc), 60, "the headless fleet")
        wait_until(lambda: _subscribed_via_log(project, workers), 30, f"{workers} subscribed workers")
        sink = DeadLetters(port)
        pub = Publisher(port, "work", rate=rate)
        t_start = time.time()
        pub.start()
        wait_until(lambda: len(project.handled("work")) > rate, 30, "throughput")
        procs = psutil.Process(proc.pid).children(recursive=True)
        faults.append(Fault("SIGKILL supervisor", time.time()))
        t0 = time.monotonic()
        proc.kill()
        proc.wait()
        wait_until(lambda: not [c for c in procs if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], 20,
                   "every child of the killed supervisor to exit")
        faults[-1].note = f"children gone {time.monotonic() - t0:.2f}s after the kill"
        faults.append(Fault("restart", time.time()))
        t0 = time.monotonic()
        proc = launch()
        wait_until(lambda: _resumed(project, pub, faults[-1].at), 60, "the restarted fleet to handle new messages")
        faults[-1].recover = time.monotonic() - t0
        time.sleep(1.0)
        log(f"  supervisor SIGKILL: {faults[0].note}; restarted fleet handling after {faults[1].recover:.2f}s")
    finally:
        if pub is not None:
            result = _finish(project, pub, sink, "work", faults, t_start, _NoFleet(), quiet=5.0, timeout=60.0)
            sink.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return result


class _NoFleet:
    """The fleet runs in another process: no event log to collect."""

    @staticmethod
    def logs_since(seq: int) -> list:
        return []


def _subscribed_via_log(project: ChaosProject, workers: int) -> bool:
    import json

    lines = (project.root / "headless.out").read_text().splitlines()
    for line in reversed(lines):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if "workers" in data:
            return sum(1 for w in data["workers"] if w["state"] == "subscribed") == workers
    return False


def _resumed(project: ChaosProject, pub: Publisher, mark: float) -> bool:
    handled = project.handled("work")
    return any(t > mark and s in handled for s, t in pub.acked().items())


def scale_down_around(project: ChaosProject, how: str, *, rate: float = 300.0, workers: int = 3,
                      log: Callable[[str], None] = print) -> Result:
    """Scale down while the chosen worker is dead, SIGKILLed during its drain, SIGSTOPped, or past its drain
    timeout; its session must be released and its backlog handed on, never forgotten."""
    slow = how == "drain-timeout"
    fleet_settings = {"drain_timeout": 1.0, "hang_timeout": 3.0} if how in ("drain-timeout", "stopped") else {}
    if slow:
        (project.handlers / "slow.py").write_text(
            "import time\nfrom handlers.chaos import record as _record\n\n"
            "def record(msg):\n    time.sleep(0.02)\n    _record(msg)\n")
    fleet = project.start(project.write([route("work", workers, "handlers.slow:record" if slow else
                                               "handlers.chaos:record")], fleet=fleet_settings))
    wait_until(lambda: subscribed(fleet, "work", workers), 30, f"{workers} subscribed workers")
    sink = DeadLetters(fleet)
    pub = Publisher(fleet, "work", rate=rate)
    faults: list[Fault] = []
    victim = f"work/{workers - 1}"
    try:
        t_start = time.time()
        pub.start()
        wait_until(lambda: len(project.handled("work")) > rate * 0.5, 30, "throughput")
        pid = worker(fleet, victim).pid
        faults.append(Fault(f"{how}: {victim}", time.time()))
        t0 = time.monotonic()
        if how == "dead":
            os.kill(pid, signal.SIGKILL)
            assert fleet.remove_worker("work", victim).ok
        elif how == "killed-in-drain":
            assert fleet.remove_worker("work", victim).ok
            os.kill(pid, signal.SIGKILL)
        elif how == "stopped":
            os.kill(pid, signal.SIGSTOP)
            assert fleet.remove_worker("work", victim).ok
        elif how == "drain-timeout":
            assert fleet.remove_worker("work", victim).ok
        wait_until(lambda: worker(fleet, victim) is None, 60, f"{victim} to leave the pool")
        faults[-1].recover = time.monotonic() - t0
        said = [r.message for r in fleet.logs_since(0) if victim in r.source or r.message.startswith(victim)]
        faults[-1].note = "; ".join(m for m in said if "drain" in m or "release" in m or "left" in m)[:90]
        faults.append(Fault("(after)", time.time(), note="publishing on"))
        time.sleep(1.5)
        log(f"  scale-down {how}: {faults[0].note}")
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except (ProcessLookupError, UnboundLocalError):
            pass
        result = _finish(project, pub, sink, "work", faults, t_start, fleet, quiet=5.0, timeout=60.0)
        sink.close()
    return result


def stop_watch(fleet, stop_after: float) -> threading.Thread:
    """Stop ``fleet`` from another thread after ``stop_after`` seconds (used by the long runner)."""
    t = threading.Thread(target=lambda: (time.sleep(stop_after), fleet.stop()), daemon=True)
    t.start()
    return t
