"""TUI CPU with N idle workers on a real in-process Fleet, refreshing every second: changed cells patched vs redrawn.

    PYTHONPATH=$PWD .venv/bin/python bench/tui_refresh.py [--workers 100] [--profile]

``patched`` is the TUI as shipped (rmqtui/ui/patch_table.py renders only the cells that changed);
``full_redraw`` is the same app with every changed cell written through ``DataTable.update_cell``,
which makes the table render every visible cell again.  Engine CPU alone is measured first and
subtracted; both TUI runs share the same fleet (same run).  ``--profile`` cProfiles the patched run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def update_cell_each(self, changes) -> None:
    """PatchTable.patch as plain DataTable does it: one update_cell per cell, each invalidating the table."""
    for row, column, value in changes:
        self.update_cell(row, column, value)


def measure(fleet, name: str, profile: bool) -> dict:
    from fig_idle import tui_cpu

    from rmqtui.ui.patch_table import PatchTable

    patch = PatchTable.patch
    if name == "full_redraw":
        PatchTable.patch = update_cell_each
    prof = None
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    try:
        return tui_cpu(fleet, 3, 3.0)
    finally:
        PatchTable.patch = patch
        if prof is not None:
            import pstats
            prof.disable()
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)


def main() -> int:
    import psutil
    from benchlib import Bench, cpu_seconds, wait_until
    from fig_idle import idle_project

    from rmqtui.engine.snapshot import WorkerState

    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--profile", action="store_true", help="cProfile the patched run (main thread: the TUI)")
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
        for name in ("patched", "full_redraw"):
            t = measure(fleet, name, args.profile and name == "patched")
            out[name] = {"tui_cpu_percent": t["cpu_percent"] - engine, "refreshes_per_s": t["refreshes_per_s"]}
    finally:
        b.close()
    out["loadavg"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
