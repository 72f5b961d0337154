"""The benchmark run: which figures, in which order, recorded how (bench/run.py calls :func:`main`).

Each figure runs in turn against one private Mosquitto; one that raises is recorded as its
error and the others go on.  The JSON, its text report and (``--write-readme``) the README's
table are written from the same rows (bench/report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

from benchlib import BENCH, Bench, log, private_dirs, start_method


def figure_functions() -> dict:
    """Figure name -> function, in the order a run measures them (memory reuses idle's fleets)."""
    import fig_fleet
    import fig_idle
    import fig_load

    return {"throughput": fig_load.fig_throughput, "scaling": fig_load.fig_scaling,
            "startup": fig_fleet.fig_startup, "drain": fig_fleet.fig_drain, "idle": fig_idle.fig_idle,
            "memory": fig_idle.fig_memory, "tui": fig_idle.fig_tui, "busy": fig_fleet.fig_busy}


def child_functions() -> dict:
    import fig_fleet
    import fig_idle

    return {"startup": fig_fleet.child_startup, "fleetcpu": fig_idle.child_fleetcpu,
            "attached": fig_idle.child_attached, "busy_tui": fig_fleet.child_busy_tui,
            "tui_pair": fig_idle.child_tui_pair, "attach_tui": fig_idle.child_attach_tui}


def measure(args, only: list[str]) -> dict:
    """Run the figures in ``only``; every figure that raises is recorded as its error, the others go on."""
    import report

    b = Bench(args)
    private_dirs(b.tmp)
    t0 = time.monotonic()

    def on_term(signum, frame):  # clean up (fleets, broker, subscribers) on SIGTERM too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    meta = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "figures": only,
            "git": report.git_info(), "machine": report.machine_info(), "start_method": start_method(),
            "loadavg_start": os.getloadavg()}
    doc: dict = {"schema": report.SCHEMA, "meta": meta, "figures": {}}
    monitor = report.ContentionMonitor()
    monitor.start()
    funcs = figure_functions()
    try:
        b.start()
        for name in [n for n in funcs if n in only]:
            t = time.monotonic()
            try:
                doc["figures"][name] = b.results[name] = funcs[name](b)
            except Exception as exc:  # one broken figure must not lose the others
                import traceback

                traceback.print_exc()
                doc["figures"][name] = {"error": f"{type(exc).__name__}: {exc}"[:1500]}
            doc["figures"][name]["elapsed_s"] = round(time.monotonic() - t, 1)
    finally:
        b.close()
    meta["elapsed_s"] = round(time.monotonic() - t0, 1)
    meta["loadavg_end"] = os.getloadavg()
    meta["contention"] = monitor.result()
    doc["rows"] = report.build_rows(doc)
    return doc


def main(argv=None) -> int:
    import report

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repetition, small counts, no 1,000-worker fleet")
    ap.add_argument("--only", default="", help=f"comma-separated figures: {', '.join(report.FIGURES)}")
    ap.add_argument("--out", help="JSON to write (the text report goes next to it as .txt); default "
                                  "bench/results/latest.json, or bench/last-run.json with --write-readme")
    ap.add_argument("--write-readme", action="store_true",
                    help="write bench/last-run.{json,txt} and the README's performance table (needs every figure)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        try:
            res = child_functions()[args.child](args)
        except Exception as exc:  # noqa: BLE001 - the parent records it as the figure's error
            res = {"error": f"{type(exc).__name__}: {exc}"[:1500]}
        Path(args.out).write_text(json.dumps(res, default=str))
        return 0
    only = [x.strip() for x in args.only.split(",") if x.strip()] or list(report.FIGURES)
    unknown = [x for x in only if x not in report.FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(report.FIGURES)}")
    if args.write_readme and args.only:
        ap.error("--write-readme publishes every figure: run without --only")
    out = Path(args.out or (BENCH / "last-run.json" if args.write_readme else BENCH / "results" / "latest.json"))
    doc = measure(args, only)
    text = report.render_text(doc)
    print(text)
    report.write_outputs(doc, out)
    log(f"wrote {out} and {out.with_suffix('.txt').name} ({doc['meta']['elapsed_s']} s)")
    if args.write_readme:
        import readme_table

        readme_table.write(doc)
        log(f"rewrote the performance table in {readme_table.README}")
        missing = readme_table.unexplained(doc, readme_table.load_notes())
        if missing:
            log(f"targets missed or failed without a note in bench/notes.toml: {', '.join(missing)}")
    return 0
