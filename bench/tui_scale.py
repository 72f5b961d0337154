"""TUI CPU against fleet size at one refresh a second, on made-up snapshots (no processes, no broker).

    PYTHONPATH=$PWD .venv/bin/python bench/tui_scale.py [100 500 1000] [--seconds 15]

Every worker is on one route (all in the workers pane) and every refresh changes every worker's
uptime and a tenth of the CPU figures: a fleet's first minute, the worst case for redrawing.
The refresh is held at one a second whatever the size, so this is what _adapt_period in
rmqtui/ui/app.py weighs (it slows the refresh past 500 workers).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import sys
import time
from pathlib import Path

import psutil


class MadeUpFleet:
    """A FixedFleet whose snapshot has ``n`` subscribed workers that tick on each call."""

    def __init__(self, n: int) -> None:
        from rmqtui.demo import FixedFleet
        from rmqtui.engine.snapshot import WorkerState

        self.base = FixedFleet("normal")
        self.first = self.base.snapshot()
        w = self.first.workers[0]
        self.workers = [dataclasses.replace(w, id=f"{w.route}/{i}", slot=i, pid=1000 + i, reason="",
                                            state=WorkerState.SUBSCRIBED) for i in range(n)]
        self.snapshots = 0

    def snapshot(self):
        self.snapshots += 1
        workers = tuple(dataclasses.replace(w, started=self.first.time - 10.0,
                                            cpu_percent=0.1 if random.random() < 0.1 else 0.0)
                        for w in self.workers)
        return dataclasses.replace(self.first, time=self.first.time + self.snapshots, workers=workers)

    def logs_since(self, seq: int) -> list:
        return []

    def __getattr__(self, name: str):
        return getattr(self.base, name)


async def measure(n: int, seconds: float) -> tuple[float, float]:
    """(CPU % of one core, refreshes per second) of the TUI on ``n`` made-up workers."""
    from rmqtui.ui.app import FleetApp

    class EverySecond(FleetApp):
        CSS_PATH = str(Path(sys.modules[FleetApp.__module__].__file__).parent / FleetApp.CSS_PATH)

        def _adapt_period(self, workers: int) -> None:
            return None

    fleet, me = MadeUpFleet(n), psutil.Process()
    async with EverySecond(fleet).run_test(size=(160, 50)) as pilot:
        await pilot.pause(1.5)
        n0, c0, t0 = fleet.snapshots, sum(me.cpu_times()[:2]), time.monotonic()
        await asyncio.sleep(seconds)
        dt = time.monotonic() - t0
        return 100 * (sum(me.cpu_times()[:2]) - c0) / dt, (fleet.snapshots - n0) / dt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int, default=[100, 500, 1000])
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    for n in args.sizes:
        cpu, rate = asyncio.run(measure(n, args.seconds))
        print(f"{n:5d} workers: {cpu:4.1f} % of a core at {rate:.2f} refreshes/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
