"""The long chaos run (not part of CI): random worker faults for N minutes, then a broker crash, a
crash-looping slot, a poison message and the issue 9 scenarios (a 60 s kill storm on 4 workers, a stop
under load and a supervisor SIGKILL each followed by a restart, with the embedded broker and with an
external Mosquitto), each against its own fleet.  Prints the figures tables.

    .venv/bin/python tests/chaos/run_long.py --minutes 5

Exit status 1 when a message was lost under a fault where losing one is a bug (all but the broker crash
and the backlog of a crash-looping slot).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _aggregate(rows) -> str:
    groups: dict[str, list] = {}
    for r in rows[1:]:
        kind = "no fault (tail)" if r.fault.startswith("(none") else r.fault.split()[0] if not r.fault.startswith("scale") else (
            "scale up" if int(r.fault.split("->")[1]) > int(r.fault.split()[1].split("->")[0]) else "scale down")
        groups.setdefault(kind, []).append(r)
    head = f"{'fault kind':<16}{'count':>6}{'published':>10}{'lost':>6}{'dup':>6}{'recover mean':>14}" \
           f"{'recover max':>13}{'max lat s':>11}"
    out = [head, "-" * len(head)]
    for kind, rs in groups.items():
        rec = [r.recover for r in rs if r.recover is not None]
        mean = f"{sum(rec) / len(rec):.2f}" if rec else "-"
        mx = f"{max(rec):.2f}" if rec else "-"
        out.append(f"{kind:<16}{len(rs):>6}{sum(r.published for r in rs):>10}{sum(r.lost for r in rs):>6}"
                   f"{sum(r.duplicated for r in rs):>6}{mean:>14}{mx:>13}{max(r.max_latency for r in rs):>11.2f}")
    return "\n".join(out)


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.chaos.delivery import ExternalBroker, kill_storm, sigkill_supervisor, stop_and_restart
    from tests.chaos.harness import ChaosProject, broker_crash, crashloop, poison, table, worker_chaos

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0, help="minutes of random worker faults (default 5)")
    ap.add_argument("--rate", type=float, default=400.0, help="published messages per second (default 400)")
    ap.add_argument("--workers", type=int, default=3, help="workers on the shared route (default 3)")
    ap.add_argument("--seed", type=int, default=int(time.time()), help="random seed (default: the time)")
    ap.add_argument("--show-rows", action="store_true", help="print one row per injected fault too")
    args = ap.parse_args()
    print(f"chaos: {args.minutes:g} min of worker faults at {args.rate:g} msg/s on {args.workers} workers, "
          f"seed {args.seed}", flush=True)
    failures = []
    tmp = Path(tempfile.mkdtemp(prefix="rmqtui-chaos-"))
    t0 = time.monotonic()
    try:
        runs = [
            ("worker faults", lambda p: (worker_chaos(p, seconds=args.minutes * 60, rate=args.rate,
                                                      workers=args.workers, seed=args.seed, gap=1.5,
                                                      log=lambda s: print(s, flush=True)), None)),
            ("broker crash", lambda p: (broker_crash(p, rate=args.rate, workers=args.workers), None)),
            ("crashloop", lambda p: crashloop(p, rate=min(args.rate, 300), workers=args.workers)),
            ("poison", lambda p: poison(p, rate=min(args.rate, 300), workers=2)),
        ]
        for where in ("embedded", "external"):
            def on(scenario, where=where, **kw):
                def run(p):
                    ext = ExternalBroker(p.root) if where == "external" else None
                    try:
                        return scenario(p, external=ext, **kw), None
                    finally:
                        p.stop_all()
                        if ext:
                            ext.stop()
                return run
            runs += [(f"kill storm 60 s ({where})", on(kill_storm, seconds=60, workers=4, rate=300)),
                     (f"stop under load + restart ({where})", on(stop_and_restart, rate=300)),
                     (f"supervisor SIGKILL + restart ({where})", on(sigkill_supervisor, rate=300))]
        for i, (name, run) in enumerate(runs):
            project = ChaosProject(tmp / str(i))
            try:
                result, facts = run(project)
            finally:
                project.stop_all()
            print()
            if name == "worker faults":
                print(_aggregate(result.rows))
                print()
                if not args.show_rows:
                    rows = [result.rows[0]] + [r for r in result.rows[1:] if r.lost or r.duplicated]
                    print(table(rows, f"{name}: baseline and the faults with a loss or a duplicate "
                                      f"({len(result.rows) - 2} faults injected)"))
                else:
                    print(table(result.rows, name))
            else:
                print(table(result.rows, name))
            if facts:
                print("  " + ", ".join(f"{k}={v}" for k, v in facts.items() if k != "events"))
            if result.lost:
                failures.append(f"{name}: lost {len(result.lost)} e.g. {result.lost[:10]}")
            print(flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - t0:.0f}s; " + ("NO LOSS where none is allowed" if not failures
                                                       else "LOSSES: " + "; ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
