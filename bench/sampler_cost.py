"""What one psutil sampling pass costs per worker, by figure (rmqtui/engine/stats.py).

Starts ``--n`` idle Python processes that import paho (about as big as a worker), then times,
per process: the oneshot block of ProcessSampler.sample_once (cpu_percent, memory_info,
num_threads, create_time), num_fds alone, and memory_full_info (USS, smaps_rollup).

    .venv/bin/python bench/sampler_cost.py [--n 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import psutil


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    a = ap.parse_args()
    procs = [subprocess.Popen([sys.executable, "-c", "import paho.mqtt.client, time; time.sleep(120)"])
             for _ in range(a.n)]
    try:
        time.sleep(3)
        ps = [psutil.Process(p.pid) for p in procs]
        for p in ps:
            p.cpu_percent(None)
        res: dict = {"n": a.n}

        def timed(fn, reps=5):
            out = []
            for _ in range(reps):
                t0 = time.perf_counter()
                for p in ps:
                    fn(p)
                out.append((time.perf_counter() - t0) * 1e6 / len(ps))
            return statistics.median(out)

        def oneshot(p):
            with p.oneshot():
                p.cpu_percent(None)
                p.memory_info()
                p.num_threads()
                p.create_time()

        def full(p):
            with p.oneshot():
                p.cpu_percent(None)
                p.memory_info()
                p.num_fds()
                p.num_threads()
                p.create_time()

        res["oneshot_us"] = timed(oneshot)
        res["num_fds_us"] = timed(lambda p: p.num_fds())
        res["current_pass_us_per_worker_without_uss"] = timed(full)
        res["uss_us"] = timed(lambda p: p.memory_full_info(), reps=3)
        print(json.dumps(res))
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
