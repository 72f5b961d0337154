"""``rmqtui --no-ui``: the engine with status lines instead of a screen.

Signal handlers only record the signal; the main loop prints status, forwards
new log records and, once a signal arrived, drains the fleet and returns.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from typing import TextIO

from . import exitcodes
from . import format as fmt
from .engine.api import FleetControl
from .engine.control.codec import snapshot_to_dict
from .engine.snapshot import FleetSnapshot, WorkerState


def _mb(n: int | None) -> str:
    """Mebibytes, as the TUI shows them."""
    return "-" if n is None else f"{fmt.megabytes(n)}M"


_duration = fmt.duration


def format_status(snap: FleetSnapshot) -> str:
    """A compact status block that fits 80 columns: a fleet line, a table of routes with a
    total, then one line per worker that is not simply running."""
    b = snap.broker
    kind = "embedded" if b.embedded else "external"
    lines = [f"{time.strftime('%H:%M:%S', time.localtime(snap.time))} broker {b.address} {b.state.value} ({kind})"
             f"  group {snap.group}  up {_duration(snap.uptime)}"]
    width = max([len(r.name) for r in snap.routes] + [5])
    lines.append(f"  {'route':<{width}}  {'workers':>7}  {'msg/s':>8}  {'handled':>9}  {'failed':>6}  {'rss':>5}")
    total_rss = 0
    for r in snap.routes:
        rss = sum(w.rss or 0 for w in snap.workers_of(r.name) if w.pid)
        total_rss += rss
        lines.append(f"  {r.name:<{width}}  {f'{r.running}/{r.desired}':>7}  {r.rate:8.1f}  {r.handled:>9}  "
                     f"{r.failed:>6}  {_mb(rss):>5}")
    failed = sum(r.failed for r in snap.routes)
    lines.append(f"  {'total':<{width}}  {f'{snap.running}/{snap.desired}':>7}  {snap.rate:8.1f}  {snap.handled:>9}  "
                 f"{failed:>6}  {_mb(total_rss):>5}")
    for w in snap.workers:
        if w.state not in (WorkerState.SUBSCRIBED, WorkerState.STARTING):
            lines.append(f"    {w.id}: {w.state.value}" + (f" ({w.reason[:60]})" if w.reason else ""))
    return "\n".join(lines)


def quit_summary(snap: FleetSnapshot | None) -> str:
    """A few lines for the terminal after quitting: uptime, the fleet's totals, where the logs are."""
    if snap is None:
        return "rmqtui: no snapshot of the fleet was ever taken"
    failed = sum(r.failed for r in snap.routes)
    dead = sum(w.dead_lettered for w in snap.workers)
    lines = [f"rmqtui: up {fmt.duration(snap.uptime)}, handled {snap.handled}, failed {failed}, "
             f"dead-lettered {dead} (workers still in the fleet at the end)"]
    logs = snap.extra.get("log_dir") if isinstance(snap.extra, dict) else None
    if logs:
        lines.append(f"rmqtui: logs in {logs} (fleet.log and one file per slot, rotated)")
    return "\n".join(lines)


def snapshot_json(snap: FleetSnapshot) -> str:
    """The snapshot as one JSON line."""
    data = snapshot_to_dict(snap)  # field by field: dataclasses.asdict deep-copies every value (4x slower)
    data.pop("extra", None)
    data["rate"] = round(snap.rate, 2)
    data["handled"] = snap.handled
    data["uptime"] = round(snap.uptime, 1)
    return json.dumps(data, default=lambda o: o.value if hasattr(o, "value") else str(o), separators=(",", ":"))


def run_headless(fleet: FleetControl, *, interval: float = 2.0, as_json: bool = False, out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr, log_level: str = "INFO", stop_timeout: float = 15.0) -> int:
    """Print status every ``interval`` seconds until SIGINT, SIGTERM or SIGHUP; then drain the fleet.

    Returns 0 after a clean drain, :data:`~rmqtui.exitcodes.FORCED` when a second
    signal forced the stop, 1 when stopping failed.  SIGUSR1 re-reads the config
    and applies worker counts and the log level live.
    """
    got: list[int] = []
    wake = threading.Event()

    def on_signal(signum, frame):  # only record it; the loop below acts
        got.append(signum)
        wake.set()

    reloads: list[int] = []

    def on_reload(signum, frame):
        reloads.append(signum)
        wake.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    reload = getattr(fleet, "reload_config", None)
    if reload is not None:
        previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, on_reload)
    threshold = _level(log_level)
    seq = 0
    try:
        next_status = time.monotonic()
        while not got:
            if reloads:
                reloads.clear()
                result = reload()
                print(f"rmqtui: SIGUSR1: {result.message}", file=err, flush=True)
            for rec in fleet.logs_since(seq):
                seq = rec.seq
                if _level(rec.level) >= threshold or rec.source in ("fleet", "broker"):
                    _print_log(rec, as_json, out, err)
            if time.monotonic() >= next_status:
                snap = fleet.snapshot()
                print(snapshot_json(snap) if as_json else format_status(snap), file=out, flush=True)
                next_status = time.monotonic() + interval
            wake.wait(0.2)
            wake.clear()
        name = signal.Signals(got[0]).name
        print(f"rmqtui: {name} received, draining the fleet (send it again to force)", file=err, flush=True)
        force = getattr(fleet, "force", None)
        forced: list[int] = []

        def on_second(signum, frame):
            forced.append(signum)
            if force is not None:
                force()

        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, on_second)
        try:
            fleet.stop(timeout=stop_timeout)
        except Exception as exc:  # a status for the caller, not a traceback
            print(f"rmqtui: stopping the fleet failed: {exc}", file=err, flush=True)
            return exitcodes.FAILURE
        for rec in fleet.logs_since(seq):
            _print_log(rec, as_json, out, err)
        if not as_json:
            print(quit_summary(fleet.snapshot()), file=err, flush=True)
        return exitcodes.FORCED if forced else exitcodes.OK
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _level(name: str) -> int:
    number = logging.getLevelName(name)  # the number for a known name, a string otherwise
    return number if isinstance(number, int) else logging.INFO


def _print_log(rec, as_json: bool, out: TextIO, err: TextIO) -> None:
    if as_json:
        print(json.dumps({"log": {"time": rec.time, "level": rec.level, "source": rec.source,
                                  "message": rec.message}}), file=out, flush=True)
    else:
        stamp = time.strftime("%H:%M:%S", time.localtime(rec.time))
        print(f"{stamp} {rec.level:<7} {rec.source}: {rec.message}", file=err, flush=True)
