"""Does ``gc.freeze()`` after start-up make the worker's per-message cost closer to the bare subscriber's?

A worker process carries every object the supervisor's modules created (forkserver preload), so
each full garbage collection walks a bigger heap than the bare subscriber's.  This runs figure 1's
v3.1.1 QoS 0 case (one worker, pre-loaded backlog) with the no-op handler and with a handler that
calls ``gc.freeze()`` at import (i.e. in the worker, after start-up), interleaved, and prints
the median msg/s and CPU s/100k of each.

    .venv/bin/python bench/gc_check.py [--messages 100000] [--reps 3] [--protocol v3.1.1] [--qos 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    from benchlib import Bench, median

    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--protocol", default="v3.1.1")
    ap.add_argument("--qos", type=int, default=0)
    a = ap.parse_args()
    b = Bench(argparse.Namespace(quick=False))
    b.start()
    out = {}
    try:
        fleets = {}
        for name, handler in (("plain", "bh.noop:handle"), ("frozen", "bh.frozen:handle")):
            cfg = b.project([{"name": "tp", "topic": f"bench/gc/{name}", "handler": handler, "shared": True,
                              "workers": 1, "qos": a.qos}], protocol=a.protocol)
            (cfg.parent / "bh" / "frozen.py").write_text(
                "import gc\nfrom bh.noop import handle\ngc.freeze()\n")
            fleet = b.start_fleet(cfg)
            fleets[name] = (fleet, cfg.parent / "status", b.subscribed(fleet, "tp", 1)[0].pid)
            out[name] = []
        for r in range(a.reps):
            for name in (("plain", "frozen") if r % 2 == 0 else ("frozen", "plain")):
                fleet, status, pid = fleets[name]
                res = b.rep([pid], lambda: list(status.glob("w*.txt")), f"bench/gc/{name}", a.messages, a.qos,
                            timeout=300)
                out[name].append(res)
                print(name, round(res["rate"]), round(res["cpu_s_per_100k"], 2), res["complete"], flush=True)
    finally:
        b.close()
    summary = {k: {"rate": median([x["rate"] for x in v]), "cpu_s_per_100k": median([x["cpu_s_per_100k"] for x in v])}
               for k, v in out.items()}
    summary["frozen_over_plain_rate"] = summary["frozen"]["rate"] / summary["plain"]["rate"]
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
