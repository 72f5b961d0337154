"""Profile an idle ``rmqtui --no-ui`` supervisor with py-spy (``.venv/bin/pip install py-spy``).

    .venv/bin/python bench/profile_supervisor.py [--workers 100] [--seconds 15] [--out /tmp/sup.txt]

Starts a private Mosquitto and ``rmqtui --no-ui --json`` with that many idle workers, waits until
its JSON stream shows every worker subscribed (bench/fleetproc.py), runs ``py-spy record --format
raw`` (collapsed stacks, all threads, idle frames excluded) on the supervisor for the given time,
stops everything and prints the functions with the most samples (self and inclusive).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    from benchlib import Bench, private_dirs
    from fig_idle import RMQTUI, STREAM_INTERVAL
    from fleetproc import HeadlessFleet

    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--out", default="/tmp/rmqtui-supervisor-profile.txt")
    a = ap.parse_args()
    ns = argparse.Namespace(quick=True)
    b = Bench(ns)
    private_dirs(b.tmp)
    b.start()
    h = None
    try:
        cfg = b.project([{"name": "idle", "topic": "bench/idle", "handler": "bh.plain:handle", "shared": True,
                          "workers": a.workers, "qos": 1}], protocol="v5")
        h = HeadlessFleet(RMQTUI, cfg, interval=STREAM_INTERVAL)
        h.wait_ready(120 + a.workers * 0.2)
        time.sleep(3)
        spy = shutil.which("py-spy") or str(Path(RMQTUI).parent / "py-spy")
        subprocess.run([spy, "record", "--pid", str(h.pid), "--duration", str(a.seconds), "--rate", "200",
                        "--format", "raw", "--output", a.out, "--nonblocking"], check=True, timeout=a.seconds + 60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        if h is not None:
            h.stop(60)
        b.close()
    self_c, incl, threads = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    for line in open(a.out):
        stack, _, n = line.rstrip().rpartition(" ")
        n = int(n)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        self_c[frames[-1]] += n
        for f in set(frames[1:]):
            incl[f] += n
    print(f"{total} samples at 200 Hz over {a.seconds} s = {100 * total / (200 * a.seconds):.1f}% of one core busy")
    print("\nby thread:")
    for k, v in threads.most_common(6):
        print(f"  {100 * v / total:5.1f}%  {k}")
    print("\nself:")
    for k, v in self_c.most_common(15):
        print(f"  {100 * v / total:5.1f}%  {k}")
    print("\ninclusive:")
    for k, v in incl.most_common(25):
        print(f"  {100 * v / total:5.1f}%  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
