"""The ``rmqtui`` command: run the fleet (TUI or ``--no-ui``), ``init``, ``check`` and ``load``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from .engine.broker import BrokerError

DEFAULT_CONFIG = "routemq.toml"
EXIT_USAGE = 2
EXIT_START = 1


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"rmqtui: {message}", file=sys.stderr)
    return code


def _load_config(path: str):
    from .engine.config import ConfigError, load

    p = Path(path)
    if not p.exists():
        if path == DEFAULT_CONFIG:
            raise ConfigError(p.resolve(), "no routemq.toml in this directory",
                              "run `rmqtui init` to write a starter routemq.toml and app_routes/ here, "
                              "or pass --config PATH")
        raise ConfigError(p, "the file does not exist", "check the path given to --config")
    return load(p)


def _run_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="rmqtui",
        description="Supervise a local fleet of MQTT shared-subscription workers. "
                    "Subcommands: init, check, load (see `rmqtui SUBCOMMAND --help`).")
    ap.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="path to routemq.toml (default: ./routemq.toml)")
    ap.add_argument("--no-ui", action="store_true", help="run headless: status lines instead of the TUI")
    ap.add_argument("--json", action="store_true", help="with --no-ui: one JSON object per line")
    ap.add_argument("--interval", type=float, default=2.0, help="with --no-ui: seconds between status lines")
    ap.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                    help="the workers' log level (overrides the config)")
    ap.add_argument("--port", type=int, help="broker port (overrides the config)")
    from . import __version__

    ap.add_argument("--version", action="version", version=f"rmqtui {__version__}")
    return ap


def cmd_run(argv: list[str]) -> int:
    args = _run_parser().parse_args(argv)
    if args.interval <= 0:
        return _fail("--interval must be a positive number of seconds")
    from .engine.config import ConfigError

    try:
        config = _load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    config = _apply_overrides(config, args)
    from .engine.supervisor import Fleet

    fleet = Fleet(config)
    try:
        fleet.start()
    except BrokerError as exc:
        return _fail(str(exc), EXIT_START)
    try:
        if args.no_ui:
            from .headless import run_headless

            return run_headless(fleet, interval=args.interval, as_json=args.json,
                                log_level=args.log_level or config.fleet.log_level)
        return _run_tui(fleet)
    finally:
        fleet.stop(timeout=config.fleet.drain_timeout + 2)


def _run_tui(fleet) -> int:
    import asyncio

    from .ui.app import FORCED_EXIT, FleetApp

    app = FleetApp(fleet)

    def on_signal(signum, frame):
        # SIGTERM/SIGHUP: leave the TUI through its own loop; the caller's finally drains the fleet
        try:
            asyncio.get_running_loop().call_soon_threadsafe(app.exit, None, 128 + signum)
        except RuntimeError:  # the app's loop is not running (yet, or any more)
            raise SystemExit(128 + signum) from None

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    app.run()
    print(app.summary())
    code = app.return_code if app.return_code is not None else 1
    if code == FORCED_EXIT:
        fleet.force()
    return code


def _apply_overrides(config, args):
    from dataclasses import replace

    if args.log_level:
        config = replace(config, fleet=replace(config.fleet, log_level=args.log_level))
    if args.port:
        config = replace(config, broker=replace(config.broker, port=args.port))
    return config


def cmd_init(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rmqtui init",
                                 description="Write a starter routemq.toml and app_routes/ (never overwrites).")
    ap.add_argument("directory", nargs="?", default=".")
    args = ap.parse_args(argv)
    from .engine.starter import init_project

    target = Path(args.directory)
    written = init_project(target, on_skip=lambda p: print(f"kept existing {p}"))
    for p in written:
        print(f"wrote {p}")
    if written:
        print("next: run `rmqtui` here (or `rmqtui --no-ui`), and `rmqtui load` in a second terminal")
    return 0


def cmd_check(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rmqtui check", description="Validate routemq.toml and exit.")
    ap.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    args = ap.parse_args(argv)
    from .engine.config import ConfigError

    try:
        config = _load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    print(f"{config.path}: ok, {len(config.routes)} routes, {sum(r.workers for r in config.routes)} workers")
    return 0


def cmd_load(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rmqtui load",
                                 description="Publish bounded test traffic to the routes of routemq.toml. "
                                             "Finds the broker of a running `rmqtui` for the same config.")
    ap.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    ap.add_argument("-n", "--count", type=int, default=10000, help="messages to publish (default 10000)")
    ap.add_argument("-r", "--rate", type=float, default=500.0, help="messages per second at most (default 500)")
    ap.add_argument("-q", "--qos", type=int, choices=[0, 1, 2], default=1)
    ap.add_argument("--route", action="append", help="only this route (repeatable)")
    ap.add_argument("--host", help="broker host (default: the running fleet's, else the config's)")
    ap.add_argument("--port", type=int, help="broker port (default: the running fleet's, else the config's)")
    args = ap.parse_args(argv)
    if args.count <= 0 or args.count > 10_000_000:
        return _fail("--count must be between 1 and 10,000,000")
    if args.rate <= 0:
        return _fail("--rate must be a positive number of messages per second")
    from .engine.config import ConfigError
    from .engine.topics import TopicPattern
    from .loadgen import publish_load

    try:
        config = _load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    host, port = _fleet_address(config)
    host, port = args.host or host, args.port or port
    routes = [r for r in config.routes if not args.route or r.name in args.route]
    if not routes:
        return _fail(f"no route called {', '.join(args.route)}; routes: {', '.join(r.name for r in config.routes)}")
    patterns = [TopicPattern.parse(r.topic) for r in routes]
    print(f"publishing {args.count} messages at up to {args.rate:g}/s, QoS {args.qos}, to {host}:{port} "
          f"({', '.join(r.name for r in routes)})", flush=True)
    try:
        result = publish_load(host, port, patterns, count=args.count, rate=args.rate, qos=args.qos,
                              protocol=config.broker.protocol, username=config.broker.username,
                              password=config.broker.password,
                              progress=lambda n: print(f"  {n} sent", flush=True) if n % 10000 == 0 else None)
    except (ConnectionError, OSError) as exc:
        return _fail(f"cannot reach the broker at {host}:{port}: {exc} (is `rmqtui` running?)", EXIT_START)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    print(f"sent {result.sent}, acknowledged {result.acknowledged}, in {result.seconds:.1f}s "
          f"({result.rate:.0f} msg/s)")
    return 0


def _fleet_address(config) -> tuple[str, int]:
    """The broker address of a running fleet for this config, else the config's own."""
    from .engine.supervisor import runtime_state_path

    try:
        state = json.loads(runtime_state_path(config.path).read_text())
        os.kill(int(state["pid"]), 0)
        return state["host"], int(state["port"])
    except (OSError, ValueError, KeyError):
        return config.broker.host, config.broker.port


COMMANDS = {"init": cmd_init, "check": cmd_check, "load": cmd_load, "run": cmd_run}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rmqtui`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return cmd_run(argv)


if __name__ == "__main__":
    sys.exit(main())
