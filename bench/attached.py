"""CPU of the attached TUI vs the in-process TUI, and of a headless supervisor serving one attached TUI.

    PYTHONPATH=. .venv/bin/python bench/attached.py [--workers 100] [--windows 3] [--window 5]

Rows (100 idle workers, median of the windows, % of one core):
  headless            `rmqtui --no-ui` alone
  headless+attached   the same supervisor while one `rmqtui attach` TUI is connected
  RemoteFleet alone   the attaching process with no TUI: the socket client reading a snapshot every second
  attached TUI        the attaching process (RemoteFleet + AttachedApp), the fleet is elsewhere
  in-process TUI      FleetApp on an in-process Fleet, minus that Fleet's engine alone
The two TUI rows also give their refreshes per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rmqtui.engine.broker import free_port  # noqa: E402
from rmqtui.engine.snapshot import WorkerState  # noqa: E402


def project(root: Path, workers: int) -> Path:
    (root / "bh").mkdir(parents=True)
    (root / "bh" / "__init__.py").write_text("")
    (root / "bh" / "plain.py").write_text("def handle(msg):\n    pass\n")
    path = root / "routemq.toml"
    path.write_text(f'[broker]\nembedded = true\nhost = "127.0.0.1"\nport = {free_port()}\n\n'
                    f'[fleet]\ngroup = "g"\nhandlers = "bh"\ndrain_timeout = 20.0\n\n'
                    f'[[routes]]\nname = "idle"\ntopic = "bench/idle"\nhandler = "bh.plain:handle"\n'
                    f'shared = true\nworkers = {workers}\nqos = 1\n')
    return path


def cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


async def windows(pids: list[int], n: int, length: float) -> list[list[float]]:
    """Per pid, the CPU % of each of ``n`` windows of ``length`` seconds (runs while the app loop runs)."""
    out: list[list[float]] = [[] for _ in pids]
    for _ in range(n):
        c0, w0 = [cpu(p) for p in pids], time.monotonic()
        await asyncio.sleep(length)
        dt = time.monotonic() - w0
        for i, p in enumerate(pids):
            out[i].append(100 * (cpu(p) - c0[i]) / dt)
    return out


def counted(app) -> list[int]:
    """Count the app's refreshes: its timer calls ``refresh_fleet``, looked up on the instance at mount."""
    calls = [0]
    inner = app.refresh_fleet

    def refresh_fleet() -> None:
        calls[0] += 1
        inner()

    app.refresh_fleet = refresh_fleet
    return calls


def wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def all_subscribed(fleet, n: int) -> bool:
    try:
        return sum(w.state is WorkerState.SUBSCRIBED for w in fleet.snapshot().workers) == n
    except Exception:
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--window", type=float, default=5.0)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="rqb"))
    os.environ["RUNTIME_DIRECTORY"], os.environ["STATE_DIRECTORY"] = str(base / "run"), str(base / "state")
    config = project(base / "p", args.workers)
    rows: dict[str, float] = {}
    rates: dict[str, float] = {}  # refreshes per second of the TUI rows
    me = os.getpid()

    from rmqtui.attach import AttachedApp
    from rmqtui.engine.control import RemoteFleet

    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "rmqtui.cli", "--no-ui", "--interval", "2", "-c", str(config)],
                            cwd=config.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(lambda: _remote_ready(config, args.workers), 180, "the headless fleet")
        time.sleep(3)  # let start-up settle
        alone = asyncio.run(windows([proc.pid], args.windows, args.window))[0]
        rows["headless"] = statistics.median(alone)

        async def client_only():
            remote = RemoteFleet(config)  # snapshots every second, as the attached TUI reads them up to 500 workers

            async def poll():
                while True:
                    remote.snapshot()
                    await asyncio.sleep(1.0)

            task = asyncio.ensure_future(poll())
            result = await windows([me], args.windows, args.window)
            task.cancel()
            remote.close()
            return result[0]

        rows["RemoteFleet alone"] = statistics.median(asyncio.run(client_only()))

        async def attached():
            remote = RemoteFleet(config)
            app = AttachedApp(remote)
            calls = counted(app)
            async with app.run_test(size=(160, 50)) as pilot:
                await pilot.pause(2.0)
                n0 = calls[0]
                result = await windows([proc.pid, me], args.windows, args.window)
                refreshes[0] = (calls[0] - n0) / (args.windows * args.window)
            remote.close()
            return result

        refreshes = [0.0]
        sup, tui = asyncio.run(attached())
        rows["headless+attached"] = statistics.median(sup)
        rows["attached TUI"] = statistics.median(tui)
        rates["attached TUI"] = refreshes[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)

    from rmqtui.engine.config import load
    from rmqtui.engine.supervisor import Fleet
    from rmqtui.ui.app import FleetApp

    fleet = Fleet(load(config))
    fleet.start()
    try:
        wait(lambda: all_subscribed(fleet, args.workers), 180, "the in-process fleet")
        time.sleep(3)
        engine = asyncio.run(windows([me], args.windows, args.window))[0]

        async def local():
            app = FleetApp(fleet)
            calls = counted(app)
            async with app.run_test(size=(160, 50)) as pilot:
                await pilot.pause(2.0)
                n0 = calls[0]
                result = (await windows([me], args.windows, args.window))[0]
                rates["in-process TUI"] = (calls[0] - n0) / (args.windows * args.window)
                return result

        both = asyncio.run(local())
        rows["in-process engine"] = statistics.median(engine)
        rows["in-process TUI"] = statistics.median(both) - statistics.median(engine)
    finally:
        fleet.stop(timeout=30)
    print(f"{args.workers} idle workers, {args.windows} x {args.window:g} s windows, CPU % of one core (median)")
    for name, value in rows.items():
        rate = f"   at {rates[name]:.2f} refreshes/s" if name in rates else ""
        print(f"  {name:<20} {value:6.2f}{rate}")


def _remote_ready(config: Path, n: int) -> bool:
    from rmqtui.engine.control import FleetGone, RemoteFleet

    try:
        remote = RemoteFleet(config)
    except (FleetGone, OSError):
        return False
    try:
        return all_subscribed(remote, n)
    finally:
        remote.close()


if __name__ == "__main__":
    main()
