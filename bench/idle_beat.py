"""Supervisor CPU with N idle workers (one headless run, 3 windows of 3 s), for before/after comparisons.

    PYTHONPATH=$PWD .venv/bin/python bench/idle_beat.py [--workers 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    from benchlib import Bench
    from fig_idle import headless_run

    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=100)
    args = ap.parse_args()
    args.quick = True
    b = Bench(args)
    b.start()
    try:
        res = headless_run(b, args.workers)
    finally:
        b.close()
    res["loadavg"] = os.getloadavg()
    print(json.dumps(res, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
