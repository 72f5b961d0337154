"""Profile one rmqtui worker draining a pre-loaded backlog, with py-spy.

    .venv/bin/python bench/profile_worker.py [--qos 0] [--protocol v5] [--messages 100000]

Same set-up as figure 1 of bench/run.py (the worker is SIGSTOPped, the backlog published, the
worker resumed); py-spy records the worker (all threads, idle excluded) while it drains, and
the functions with the most samples are printed.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def summarize(path: str, top: int = 25) -> None:
    self_c, incl = collections.Counter(), collections.Counter()
    total = 0
    for line in open(path):
        stack, _, n = line.rstrip().rpartition(" ")
        n = int(n)
        total += n
        frames = stack.split(";")
        self_c[frames[-1]] += n
        for f in set(frames[1:]):
            incl[f] += n
    print(f"{total} samples")
    print("self:")
    for k, v in self_c.most_common(top):
        print(f"  {100 * v / total:5.1f}%  {k}")
    print("inclusive:")
    for k, v in incl.most_common(top + 10):
        print(f"  {100 * v / total:5.1f}%  {k}")


def main() -> int:
    from benchlib import PY, Bench

    ap = argparse.ArgumentParser()
    ap.add_argument("--qos", type=int, default=0)
    ap.add_argument("--protocol", default="v5")
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--bare", action="store_true", help="profile the bare subscriber instead")
    ap.add_argument("--out", default="/tmp/rmqtui-worker-profile.txt")
    a = ap.parse_args()
    b = Bench(argparse.Namespace(quick=True))
    b.start()
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    try:
        cfg = b.project([{"name": "tp", "topic": "bench/p", "handler": "bh.noop:handle", "shared": True,
                          "workers": 1, "qos": a.qos}], protocol=a.protocol)
        status = cfg.parent / "status"
        if a.bare:
            p = b.start_bare("$share/bare/bench/p", a.qos, a.protocol, status / "bare.txt")
            pid, files = p.pid, lambda: [status / "bare.txt"]
        else:
            fleet = b.start_fleet(cfg)
            pid = b.subscribed(fleet, "tp", 1)[0].pid
            files = lambda: list(status.glob("w*.txt"))  # noqa: E731
        rec = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--output",
                                a.out, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res = b.rep([pid], files, "bench/p", a.messages, a.qos, timeout=300)
        rec.send_signal(2)
        rec.wait(30)
        print(f"{res['rate']:.0f} msg/s, {res['cpu_s_per_100k']:.2f} cpu s/100k (under py-spy)")
    finally:
        b.close()
    summarize(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
