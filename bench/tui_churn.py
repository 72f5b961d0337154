"""How many worker-table cells change per TUI refresh with idle workers.

Takes fleet snapshots ``--refresh`` seconds apart (the TUI's refresh interval) over a real
Fleet of idle workers and counts, per refresh, the worker rows whose formatted cells differ,
by column (using rmqtui.format, as the workers table does).  Every changed cell is rendered
again (rmqtui/ui/patch_table.py); through ``DataTable.update_cell`` one would re-render the whole table.

    .venv/bin/python bench/tui_churn.py [--workers 100] [--refreshes 20]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    from benchlib import Bench, wait_until

    from rmqtui.engine.snapshot import WorkerState
    from rmqtui import format as fmt

    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--refreshes", type=int, default=20)
    ap.add_argument("--refresh", type=float, default=0.5)
    a = ap.parse_args()
    cols = {"handled": lambda w: fmt.count(w.handled), "rate": lambda w: fmt.rate(w.rate),
            "cpu": lambda w: fmt.percent(w.cpu_percent), "rss": lambda w: fmt.megabytes(w.rss),
            "fds": lambda w: fmt.plain(w.fds),
            "threads": lambda w: fmt.plain(w.threads), "state": lambda w: w.state.value}
    b = Bench(argparse.Namespace(quick=True))
    b.start()
    try:
        cfg = b.project([{"name": "idle", "topic": "bench/idle", "handler": "bh.plain:handle", "shared": True,
                          "workers": a.workers, "qos": 1}], protocol="v5")
        fleet = b.start_fleet(cfg)
        wait_until(lambda: sum(1 for w in fleet.snapshot().workers if w.state is WorkerState.SUBSCRIBED)
                   == a.workers, 120, 0.2, "workers")
        time.sleep(3)
        prev = None
        changed = collections.Counter()
        rows_changed = []
        for _ in range(a.refreshes + 1):
            now = fleet.snapshot()
            snap = {w.id: {**{k: f(w) for k, f in cols.items()}, "uptime": fmt.duration(w.uptime_at(now.time))}
                    for w in now.workers}
            if prev is not None:
                n = 0
                for wid, cells in snap.items():
                    diff = [k for k in cells if prev.get(wid, {}).get(k) != cells[k]]
                    changed.update(diff)
                    n += bool(diff)
                rows_changed.append(n)
            prev = snap
            time.sleep(a.refresh)
    finally:
        b.close()
    print(json.dumps({"workers": a.workers, "refreshes": a.refreshes,
                      "rows_changed_per_refresh_median": sorted(rows_changed)[len(rows_changed) // 2],
                      "cells_changed_per_refresh_by_column": {k: v / a.refreshes for k, v in changed.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
