"""``rmqtui ctl``: status and commands for a running fleet, over its control socket.

Also the host side of the control plane for ``rmqtui`` itself: :func:`claim`
serves the fleet on its socket (one fleet per config) and tells systemd about it.
Exit status: 0 done, 1 the fleet refused (the reason is printed), 2 usage,
3 no fleet is running for the config.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from .engine.control import (EXIT_NO_FLEET, OPERATOR, AlreadyRunning, ControlServer, FleetGone, RemoteError,
                             RemoteFleet, connect, probe, socket_path)
from .engine.control.codec import record_from_dict, snapshot_to_dict
from .engine.runtime import RuntimePathError, fleet_state_dir
from .engine.snapshot import FleetSnapshot, LogRecord
from .sdnotify import ServiceNotifier

DEFAULT_CONFIG = "routemq.toml"
EXIT_REFUSED = 1
GROUP_ENV = "RMQTUI_CONTROL_GROUP"


# -- hosting a fleet (used by `rmqtui` / `rmqtui --no-ui`) ---------------------------------------

class Host:
    """The control plane of a fleet this process runs: its socket server and the systemd notifier."""

    def __init__(self, fleet, config_path: Path) -> None:
        self.fleet = fleet
        self.config_path = config_path
        self.server: ControlServer | None = None
        self.running: AlreadyRunning | None = None
        self.notifier = ServiceNotifier(fleet)

    def refusal(self) -> str:
        """The message for a second headless fleet on this config."""
        return f"{self.config_path}: {self.running}"

    def started(self) -> None:
        """The fleet is up: start telling systemd (ready once every worker is subscribed)."""
        self.notifier.start()

    def stopping(self) -> None:
        """The host begins to drain the fleet."""
        self.notifier.stopping()

    def serve_ops(self, ops) -> None:
        """Answer ``metrics`` and ``unpin`` on the control socket from ``ops`` (an OpsServices)."""
        if self.server is not None:
            self.server.ops = ops

    def close(self) -> None:
        """Remove the sockets (after the fleet stopped)."""
        if self.server is not None:
            self.server.close()


def add_run_options(ap: argparse.ArgumentParser) -> None:
    """The control-plane options of ``rmqtui`` itself."""
    ap.add_argument("--no-control", action="store_true",
                    help="serve no control socket (no rmqtui ctl/attach for this fleet)")


def claim(fleet, config, *, control: bool = True) -> Host:
    """Serve ``fleet`` on the control socket of ``config`` before it starts, so a config has one fleet.

    When a fleet already answers, ``host.running`` is set and nothing is served.  A socket
    that cannot be created is reported once on stderr and the fleet runs without it.
    """
    host = Host(fleet, Path(config.path).resolve())
    if not control:  # serve nothing, but still never start a second fleet next to one that answers
        try:
            info = probe(socket_path(host.config_path, OPERATOR, create=False))
        except RuntimePathError:
            info = None
        host.running = AlreadyRunning(info) if info else None
        return host
    server = ControlServer(fleet, host.config_path, audit_dir=fleet_state_dir(host.config_path),
                           stop=lambda: os.kill(os.getpid(), signal.SIGTERM), group=os.environ.get(GROUP_ENV))
    try:
        server.start()
    except AlreadyRunning as exc:
        host.running = exc
    except (OSError, RuntimePathError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"rmqtui: no control socket ({reason}); the fleet runs, but rmqtui ctl/attach cannot reach it",
              file=sys.stderr, flush=True)
    else:
        host.server = server
    return host


# -- rmqtui ctl --------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rmqtui ctl", description="Inspect and command a running fleet. "
                                 "Exit status: 0 done, 1 refused, 3 no fleet running.")
    ap.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="the fleet's routemq.toml (default: ./routemq.toml)")
    ap.add_argument("--read-only", action="store_true", help="connect to the read-only socket")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("status", help="routes and workers")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p = sub.add_parser("scale", help="set a route's worker count")
    p.add_argument("route")
    p.add_argument("count", type=int)
    sub.add_parser("add", help="one more worker on a route").add_argument("route")
    p = sub.add_parser("remove", help="drain one worker of a route (the highest slot by default)")
    p.add_argument("route")
    p.add_argument("worker", nargs="?")
    sub.add_parser("restart", help="drain a worker and start its slot anew").add_argument("worker")
    sub.add_parser("kill", help="SIGKILL a worker (the fleet restarts it)").add_argument("worker")
    p = sub.add_parser("debug", help="debug logging of a worker, or 'all'")
    p.add_argument("worker", help="a worker id such as sensor-data/0, or all")
    p.add_argument("switch", choices=["on", "off"])
    sub.add_parser("reload", help="re-read routemq.toml and apply counts and the log level")
    sub.add_parser("save", help="write the current counts to routemq.toml")
    p = sub.add_parser("logs", help="recent log records")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new records (ctrl+c ends)")
    p.add_argument("--worker", help="only this worker's records")
    p.add_argument("-n", "--lines", type=int, default=50, help="how many recent records (default 50)")
    p.add_argument("--wide", action="store_true", help="whole lines instead of cutting them at 80 columns")
    p.add_argument("--json", action="store_true", help="one JSON object per record, whole")
    sub.add_parser("metrics", help="the fleet's Prometheus metrics, as /metrics would serve them")
    sub.add_parser("unpin", help="let the autoscaler decide a route's count again after a manual change"
                   ).add_argument("route")
    p = sub.add_parser("adopt", help="take over a dead host's sessions: hand their queued messages to this fleet")
    p.add_argument("host", help="the dead host's host id")
    p.add_argument("--force", action="store_true", help="also a host that stopped cleanly (never a live one)")
    sub.add_parser("stop", help="drain every worker and stop the fleet")
    return ap


def cmd_ctl(argv: list[str]) -> int:
    """``rmqtui ctl``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "status":
            return _status(args)
        if args.command == "logs":
            return _logs(args)
        if args.command == "metrics":
            return _metrics(args)
        return _command(args)
    except FleetGone as exc:
        print(f"rmqtui ctl: {exc}", file=sys.stderr)
        return EXIT_NO_FLEET
    except RuntimePathError as exc:
        print(f"rmqtui ctl: {exc}", file=sys.stderr)
        return EXIT_NO_FLEET
    except TimeoutError as exc:
        print(f"rmqtui ctl: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


_METHODS = {"scale": lambda a: ("scale", {"route": a.route, "count": a.count}),
            "add": lambda a: ("add", {"route": a.route}),
            "remove": lambda a: ("remove", {"route": a.route, "worker": a.worker}),
            "restart": lambda a: ("restart", {"worker": a.worker}),
            "kill": lambda a: ("kill", {"worker": a.worker}),
            "debug": lambda a: ("set_log_level", {"level": "DEBUG" if a.switch == "on" else "INFO",
                                                  "worker": None if a.worker == "all" else a.worker}),
            "reload": lambda a: ("reload", {}), "save": lambda a: ("save", {}), "stop": lambda a: ("stop", {}),
            "unpin": lambda a: ("unpin", {"route": a.route}),
            "adopt": lambda a: ("adopt", {"host": a.host, "force": a.force})}


def _metrics(args) -> int:
    conn = connect(args.config, read_only=args.read_only)
    try:
        text = conn.call("metrics", {}, timeout=30)["text"]
    except RemoteError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        conn.close()
    sys.stdout.write(text)
    return 0


def _command(args) -> int:
    method, params = _METHODS[args.command](args)
    conn = connect(args.config, read_only=args.read_only)
    try:
        result = conn.call(method, params, timeout=600 if method == "adopt" else 60)
    except RemoteError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        if method != "stop":
            conn.close()
    if method == "stop" and result.get("ok"):
        print(result["message"], flush=True)
        if not conn.closed.wait(120):  # the fleet closes its socket once it has drained and exits
            print("the fleet is still draining after 120 s", file=sys.stderr)
            return EXIT_REFUSED
        print("fleet stopped")
        return 0
    if result.get("ok"):
        print(result.get("message", ""))
    else:
        print(f"refused: {result.get('message', '')}", file=sys.stderr)
    return 0 if result.get("ok") else EXIT_REFUSED


def _status(args) -> int:
    remote = RemoteFleet(args.config, read_only=args.read_only)
    try:
        snap = remote.snapshot()
    finally:
        remote.close()
    if args.json:
        data = snapshot_to_dict(snap)
        data["control"] = {"role": remote.role, "pid": remote.fleet_pid}
        print(json.dumps(data, separators=(",", ":")))
    else:
        print(format_status(snap, pid=remote.fleet_pid))
    return 0


def format_status(snap: FleetSnapshot, *, pid: int | None = None) -> str:
    """The headless status block plus one line per worker, within 80 columns."""
    from .headless import format_status as routes_block

    width = min(max([len(w.id) for w in snap.workers] + [6]), 24)
    lines = [routes_block(snap), f"  {'worker':<{width}} {'state':<11} {'pid':>7} {'msg/s':>7} {'handled':>9} "
                                 f"{'fail':>5} {'rst':>3} {'rss':>5}"]
    for w in snap.workers:
        rss = "-" if w.rss is None else f"{w.rss / 1e6:.0f}M"
        lines.append(f"  {w.id[:width]:<{width}} {w.state.value[:11]:<11} {w.pid or '-':>7} {w.rate:7.1f} "
                     f"{w.handled:>9} {w.failed:>5} {w.restarts:>3} {rss:>5}")
    if pid is not None:
        lines.append(f"  fleet pid {pid}, config {snap.config_path}"[:80])
    return "\n".join(lines)


def format_record(rec: LogRecord, width: int | None = None) -> str:
    """One log record for a terminal: its first line after time, level and source, further lines (a
    traceback) indented; with ``width`` every line is cut to that many columns, ending in an ellipsis."""
    stamp = time.strftime("%H:%M:%S", time.localtime(rec.time))
    first, *more = rec.message.splitlines() or [""]
    lines = [f"{stamp} {rec.level:<7} {rec.source}: {first}"] + [f"    {line}" for line in more]
    if width:
        lines = [line if len(line) <= width else line[:width - 1] + "…" for line in lines]
    return "\n".join(lines)


def _logs(args) -> int:
    last = [0]
    width = None if args.wide else 80

    def show(raw: dict) -> None:
        if args.json:
            print(json.dumps(raw, separators=(",", ":")), flush=True)
        else:
            print(format_record(record_from_dict(raw), width), flush=True)

    def on_notify(method: str, params: dict) -> None:
        if method == "log":
            for raw in params.get("records", ()):
                if raw["seq"] > last[0]:
                    last[0] = raw["seq"]
                    show(raw)
            if params.get("dropped"):
                print(f"({params['dropped']} records dropped: this terminal reads too slowly)", file=sys.stderr)

    conn = connect(args.config, read_only=args.read_only)
    try:
        records = conn.call("logs", {"since": 0, "worker": args.worker})["records"]
        for raw in records[-max(args.lines, 0):] if args.lines else []:
            show(raw)
        last[0] = records[-1]["seq"] if records else 0
        if args.follow:
            conn.on_notify = on_notify
            conn.call("subscribe", {"streams": ["log"], "worker": args.worker})
            conn.closed.wait()
            print("the fleet stopped", file=sys.stderr)
    finally:
        conn.close()
    return 0


def attach_instead(config_path: Path, running: AlreadyRunning) -> int:
    """``rmqtui`` (TUI) on a config whose fleet runs: attach to it instead of starting a second one."""
    print(f"rmqtui: this config's fleet already runs (pid {running.pid}); attaching to it (q detaches)",
          file=sys.stderr, flush=True)
    from .attach import run_attached

    return run_attached(str(config_path))


def _cmd_attach(argv: list[str]) -> int:
    from .attach import cmd_attach  # imports Textual: only when attaching

    return cmd_attach(argv)


COMMANDS = {"ctl": cmd_ctl, "attach": _cmd_attach}
