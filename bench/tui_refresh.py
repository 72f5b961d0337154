"""TUI CPU with N idle workers on a real in-process Fleet: adaptive refresh (workers/50 s) vs every second.

    PYTHONPATH=$PWD .venv/bin/python bench/tui_refresh.py [--workers 100]

Engine CPU alone is measured first and subtracted; both TUI runs share the same fleet (same run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    import psutil
    from benchlib import Bench, cpu_seconds, wait_until
    from fig_idle import idle_project, tui_cpu

    from rmqtui.engine.snapshot import WorkerState
    from rmqtui.ui.app import FleetApp

    class EverySecond(FleetApp):
        CSS_PATH = str(Path(sys.modules[FleetApp.__module__].__file__).parent / FleetApp.CSS_PATH)

        def _adapt_period(self, workers: int) -> None:
            return None

    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--profile", action="store_true", help="cProfile the every-second run (main thread: the TUI)")
    args = ap.parse_args()
    args.quick = True
    b = Bench(args)
    b.start()
    me = psutil.Process()
    out: dict = {"workers": args.workers}
    try:
        fleet = b.start_fleet(idle_project(b, args.workers))
        wait_until(lambda: sum(1 for w in fleet.snapshot().workers if w.state is WorkerState.SUBSCRIBED)
                   == args.workers, 120, 0.2, "workers subscribed")
        time.sleep(3.0)
        c0, t0 = cpu_seconds(me.pid), time.monotonic()
        time.sleep(9.0)
        engine = 100 * (cpu_seconds(me.pid) - c0) / (time.monotonic() - t0)
        out["engine_cpu_percent"] = engine
        for name, cls in (("adaptive", FleetApp), ("every_second", EverySecond)):
            prof = None
            if args.profile and name == "every_second":
                import cProfile
                prof = cProfile.Profile()
                prof.enable()
            t = tui_cpu(fleet, 3, 3.0, cls)
            if prof is not None:
                import pstats
                prof.disable()
                pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
            out[name] = {"tui_cpu_percent": t["cpu_percent"] - engine, "refreshes_per_s": t["refreshes_per_s"]}
    finally:
        b.close()
    out["loadavg"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
