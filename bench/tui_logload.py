"""The TUI's cost under a log flood: CPU of the app and keypress-to-screen latency.

Feeds ``--rates`` thousand log records per second through a FleetControl (the demo fleet
with a record generator behind ``logs_since``) into FleetApp running headless at the
given terminal size, for ``--seconds`` per rate.  It prints, per rate:

* ``app cpu%``: process CPU over the window minus the time spent generating records
  (that work belongs to the engine, not the TUI);
* ``key ms``: median and worst time from sending a key (``a``, which redraws the workers
  pane) until the app has handled it and painted the screen (``pilot.press`` returns
  once the screen is idle);
* ``lag ms``: the worst delay of a 50 ms timer on the UI loop (how late everything runs);
* ``refresh ms``: the mean CPU time of one refresh on the UI loop (snapshot, tables, log
  batch), with record generation taken out.

On a loaded machine ``key ms`` includes the wait for a CPU; compare the rates with each other.

``--gated`` measures the case the issue names instead: fleet-wide debug at the load generator's top
rate.  Whatever that rate, each worker's rate gate (:data:`rmqtui.engine.logfiles.RATE` records/s) caps
what reaches the TUI at workers x RATE, so the flood runs at that ceiling; the line ends with the
targets (key < 100 ms, app < 15 % of a core) and the load average, since other processes share the CPU.

    PYTHONPATH=$PWD .venv/bin/python bench/tui_logload.py [--rates 0,1,5,20] [--seconds 10] [--gated]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rmqtui.demo import FixedFleet  # noqa: E402
from rmqtui.engine.logfiles import RATE  # noqa: E402
from rmqtui.engine.snapshot import LogRecord  # noqa: E402
from rmqtui.ui.app import FleetApp  # noqa: E402


class FloodFleet:
    """The demo fleet, plus ``rate`` DEBUG records per second from its workers."""

    def __init__(self, rate: float) -> None:
        self._fleet = FixedFleet("debug")
        self._sources = [w.id for w in self._fleet.snapshot().workers]
        self.rate = rate
        self._seq = 1_000_000  # above the demo's own records
        self._made = 0
        self._start = time.monotonic()
        self._ring: list[LogRecord] = []  # contiguous seqs, so "after seq" is a slice
        self.generating = 0.0  # seconds spent making records (engine work, not TUI work)

    def __getattr__(self, name):
        return getattr(self._fleet, name)

    def logs_since(self, seq: int) -> list[LogRecord]:
        t0 = time.thread_time()
        due = int((time.monotonic() - self._start) * self.rate)
        now = time.time()
        while self._made < due:
            self._seq += 1
            source = self._sources[self._made % len(self._sources)]
            self._ring.append(LogRecord(self._seq, now, "DEBUG", source,
                                        f"sensors/th-{self._made % 997:04d}/data -> process_data "
                                        f"{(self._made % 50) / 10:.1f} ms payload 64 B qos 1"))
            self._made += 1
        if len(self._ring) > 400_000:
            del self._ring[:200_000]
        base = self._fleet.logs_since(seq) if seq < 1_000_000 else []
        missing = min(len(self._ring), self._seq - max(seq, 1_000_000))
        fresh = self._ring[len(self._ring) - missing:] if missing > 0 else []
        self.generating += time.thread_time() - t0
        return base + fresh


async def measure(rate: float, seconds: float, size: tuple[int, int]) -> dict:
    fleet = FloodFleet(rate)
    app = FleetApp(fleet, refresh=1.0)
    lags: list[float] = []
    keys: list[float] = []
    refreshes: list[float] = []
    original = app.refresh_fleet

    def timed_refresh() -> None:
        t, g = time.thread_time(), fleet.generating
        original()
        refreshes.append(time.thread_time() - t - (fleet.generating - g))

    app.refresh_fleet = timed_refresh  # the timer and the commands call it through the attribute
    async with app.run_test(size=size) as pilot:
        await pilot.pause(1.0)

        async def probe() -> None:
            while True:
                t = time.monotonic()
                await asyncio.sleep(0.05)
                lags.append(time.monotonic() - t - 0.05)

        prober = asyncio.create_task(probe())
        gen0, cpu0, t0 = fleet.generating, time.process_time(), time.monotonic()
        while time.monotonic() - t0 < seconds:
            k0 = time.monotonic()
            await pilot.press("a")
            keys.append(time.monotonic() - k0)
            await asyncio.sleep(0.4)
        wall = time.monotonic() - t0
        cpu = time.process_time() - cpu0 - (fleet.generating - gen0)
        prober.cancel()
    return {
        "rate": rate, "cpu": 100.0 * cpu / wall, "key_median": 1000 * statistics.median(keys),
        "key_max": 1000 * max(keys), "lag_max": 1000 * max(lags, default=0.0), "records": fleet._made,
        "refresh": 1000 * statistics.mean(refreshes or [0.0]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="0,1,5,20", help="thousands of records per second, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="80x24")
    ap.add_argument("--gated", action="store_true", help="fleet-wide debug at the rate gate's ceiling, with targets")
    a = ap.parse_args()
    size = tuple(int(v) for v in a.size.split("x"))
    if a.gated:
        workers = len(FixedFleet("debug").snapshot().workers)
        r = asyncio.run(measure(workers * RATE, a.seconds, size))
        ok = "meets" if r["key_max"] < 100 and r["cpu"] < 15 else "misses"
        print(f"fleet-wide debug, {workers} workers x {RATE:.0f} records/s (the gate's ceiling) at {a.size}: "
              f"key ms median {r['key_median']:.1f} max {r['key_max']:.1f} (target < 100), app cpu "
              f"{r['cpu']:.1f} % (target < 15): {ok} the targets; load average "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        return 0
    print(f"{'records/s':>10} {'app cpu%':>9} {'key ms med':>11} {'key ms max':>11} {'lag ms max':>11} "
          f"{'refresh ms':>11}")
    for rate in (float(r) * 1000 for r in a.rates.split(",")):
        r = asyncio.run(measure(rate, a.seconds, size))
        print(f"{r['rate']:>10.0f} {r['cpu']:>9.1f} {r['key_median']:>11.1f} {r['key_max']:>11.1f} "
              f"{r['lag_max']:>11.1f} {r['refresh']:>11.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
