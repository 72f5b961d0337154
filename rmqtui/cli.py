"""The ``rmqtui`` command: run the fleet (TUI or ``--no-ui``), ``init``, ``check`` and ``load``.

Every option is checked the way the config is (ranges, finite numbers, known
names), every command returns a status from :mod:`rmqtui.exitcodes`, and no
command ends in a Python traceback, a closed output pipe included.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from pathlib import Path

from . import ctl, exitcodes
from .doctor import register as _register_doctor
from .engine.broker import BrokerError

DEFAULT_CONFIG = "routemq.toml"


def _fail(message: str, code: int = exitcodes.BAD_INPUT) -> int:
    try:
        print(f"rmqtui: {message}", file=sys.stderr, flush=True)
    except OSError:  # stderr closed too: the status still tells
        pass
    return code


# -- option types: argparse turns their ArgumentTypeError into a usage error (exit 2) -------------

def _ranged(kind: type, what: str, lo: float, hi: float, shown: str):
    """An option type: a finite ``kind`` between ``lo`` and ``hi``, named ``what`` in errors."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number: give {what}, {shown}") from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range: give {what}, {shown}")
        return value

    return parse


port = _ranged(int, "a TCP port", 1, 65535, "1 to 65535")
interval = _ranged(float, "seconds", 0.05, 86400.0, "0.05 to 86400")
rate = _ranged(float, "messages per second", 0.001, 1_000_000.0, "0.001 to 1,000,000")
count = _ranged(int, "a number of messages", 1, 10_000_000, "1 to 10,000,000")


def host(text: str) -> str:
    """A broker host name or address."""
    if not text.strip() or len(text) > 253:
        raise argparse.ArgumentTypeError("give a host name or address, e.g. 127.0.0.1")
    return text.strip()


def _load_config(path: str):
    from .engine.config import ConfigError, load
    from .routemq.commands import load_config_with_dotenv
    from .routemq.dotenv import DotEnvError

    p = Path(path)
    if not p.exists() and not p.is_symlink():
        if path == DEFAULT_CONFIG:
            raise ConfigError(p.resolve(), "no routemq.toml in this directory",
                              "run `rmqtui init` to write a starter routemq.toml and app_routes/ here, "
                              "or pass --config PATH")
        raise ConfigError(p, "the file does not exist", "check the path given to --config")
    try:
        return load_config_with_dotenv(p, load)
    except DotEnvError as e:
        raise ConfigError(e.path, e.problem, e.fix, line=e.line) from None


def _config_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("-c", "--config", default=DEFAULT_CONFIG,
                    help="path to routemq.toml (default: ./routemq.toml)")


# -- rmqtui [--no-ui] -----------------------------------------------------------------------------

def _run_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .engine.config import LOG_LEVELS

    ap = argparse.ArgumentParser(
        prog="rmqtui",
        description="Supervise a local fleet of MQTT shared-subscription workers. "
                    "Subcommands: init, check, load, doctor, ctl, attach (see `rmqtui SUBCOMMAND --help`). "
                    "Exit status: 0 clean stop, 1 runtime failure, 2 bad input, 3 no fleet (ctl), 130 forced stop.")
    _config_arg(ap)
    ap.add_argument("--no-ui", action="store_true", help="run headless: status lines instead of the TUI")
    ap.add_argument("--json", action="store_true", help="with --no-ui: one JSON object per line")
    ap.add_argument("--interval", type=interval, help="with --no-ui: seconds between status lines (default 2)")
    ap.add_argument("--log-level", choices=LOG_LEVELS, type=str.upper,
                    help="the workers' log level (overrides the config)")
    ap.add_argument("--port", type=port, help="broker port, 1 to 65535 (overrides the config)")
    ap.add_argument("--routemq-app", metavar="DIR", help="run the RouteMQ project in DIR (writes its "
                    "routemq.toml first when missing, see `rmqtui init --from-routemq`)")
    ap.add_argument("--routers", default="app.routers", help="with --routemq-app: the routers package")
    ctl.add_run_options(ap)
    ap.add_argument("--fresh", action="store_true",
                    help="discard the embedded broker's stored sessions and queued messages before starting")
    ap.add_argument("--version", action="version", version=f"rmqtui {__version__}")
    return ap


def cmd_run(argv: list[str]) -> int:
    ap = _run_parser()
    args = ap.parse_args(argv)
    if not args.no_ui and (args.json or args.interval is not None):
        ap.error(f"{'--json' if args.json else '--interval'} only applies with --no-ui")
    from .engine.config import ConfigError

    if args.routemq_app:
        from .routemq.commands import config_for_app

        app_config = config_for_app(args.routemq_app, args.routers)
        if app_config is None:
            return exitcodes.BAD_INPUT
        args.config = str(app_config)
    try:
        config = _apply_overrides(_load_config(args.config), args)
    except ConfigError as exc:
        return _fail(str(exc))
    from .engine.supervisor import Fleet

    _forget_password_env(config)
    detacher = None
    if not args.no_ui:
        from .detach import split

        detacher = split()  # before any thread: the TUI may detach later and leave the fleet running
    fleet = Fleet(config, fresh=args.fresh)
    stop_timeout = config.fleet.drain_timeout + 2
    host = ctl.claim(fleet, config, control=not args.no_control)  # control socket: one fleet per config
    if host.running is not None:
        if args.no_ui:
            return _fail(host.refusal(), exitcodes.FAILURE)
        return ctl.attach_instead(config.path, host.running)
    try:
        fleet.start()
    except BrokerError as exc:
        host.close()
        fleet.stop(timeout=stop_timeout)
        return _fail(str(exc), exitcodes.FAILURE)
    except BaseException:
        host.close()
        fleet.stop(timeout=stop_timeout)
        raise
    host.started()
    from .engine.ops import OpsServices

    ops = OpsServices(fleet, config.broker, config.ops).start()  # /metrics and autoscale, when configured
    host.serve_ops(ops)  # rmqtui ctl metrics / unpin
    code = exitcodes.FAILURE
    try:
        if args.no_ui:
            from .headless import run_headless

            code = run_headless(fleet, interval=args.interval or 2.0, as_json=args.json,
                                log_level=args.log_level or config.fleet.log_level, stop_timeout=stop_timeout)
        else:
            code = _run_tui(fleet, stop_timeout, detacher)
            if code == DETACHED:
                from .engine import runtime
                from .headless import run_headless

                detacher.detach(runtime.fleet_state_dir(config.path) / "detached.log",
                                f"rmqtui: detached; the fleet keeps running (pid {os.getpid()}). Back: rmqtui attach"
                                f"{_config_flag(config)}; stop: rmqtui ctl{_config_flag(config)} stop")
                with open(os.devnull, "w") as quiet:
                    code = run_headless(fleet, interval=3600.0, out=quiet, log_level=args.log_level
                                        or config.fleet.log_level, stop_timeout=stop_timeout)
        return code
    finally:
        ops.stop()
        host.stopping()
        fleet.stop(timeout=stop_timeout)  # a no-op after a clean stop; drains after an error
        host.close()


def _forget_password_env(config) -> None:
    """Drop the broker password from this process's environment once the config holds it.

    Workers get it through their pipe; left in the environment it would be inherited by Mosquitto,
    the fork server and every worker, where any handler (or /proc/PID/environ) could read it."""
    for name in {config.broker.password_env, "MQTT_PASSWORD"} - {""}:
        os.environ.pop(name, None)


class _SignalStop(Exception):
    """The TUI left its loop because of a signal; the caller drains the fleet."""


#: what :func:`_run_tui` returns when the operator detached (never an exit status)
DETACHED = -1


def _config_flag(config) -> str:
    """`` -c PATH`` when ``config`` is not ./routemq.toml, for commands to copy."""
    return "" if config.path == Path(DEFAULT_CONFIG).resolve() else f" -c {config.path}"


def _run_tui(fleet, stop_timeout: float, detacher=None) -> int:
    """The TUI's own result (``q``: 0 drained, 1 stop failed, forced; :data:`DETACHED`) or, after a signal,
    the drain's."""
    import asyncio

    from .ui.app import DETACH_EXIT, FORCED_EXIT, FleetApp

    app = FleetApp(fleet, detachable=detacher is not None)
    signalled: list[int] = []

    def on_signal(signum, frame):
        # Leave the TUI through its own loop; the drain runs below, outside the app.
        signalled.append(signum)
        try:
            asyncio.get_running_loop().call_soon_threadsafe(app.exit, None, exitcodes.OK)
        except RuntimeError:  # the app's loop is not running (yet, or any more)
            raise _SignalStop from None

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        app.run()
    except _SignalStop:
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if app.return_code != DETACH_EXIT:
        print(app.summary())
    if signalled:
        return drain(fleet, stop_timeout, f"{signal.Signals(signalled[0]).name} received")
    code = app.return_code if app.return_code is not None else exitcodes.FAILURE
    if code == DETACH_EXIT:
        return DETACHED
    if code == FORCED_EXIT:
        fleet.force()
        return exitcodes.FORCED
    return code


def drain(fleet, timeout: float, why: str) -> int:
    """Stop ``fleet`` cleanly; a signal meanwhile forces it.  Returns the exit status."""
    forced: list[int] = []

    def on_signal(signum, frame):
        forced.append(signum)
        fleet.force()

    _fail(f"{why}, draining the fleet (send it again to force)", exitcodes.OK)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        fleet.stop(timeout=timeout)
    except Exception as exc:  # reported as a status, not a traceback
        return _fail(f"stopping the fleet failed: {exc}", exitcodes.FAILURE)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return exitcodes.FORCED if forced else exitcodes.OK


def _apply_overrides(config, args):
    from dataclasses import replace

    if args.log_level:
        config = replace(config, fleet=replace(config.fleet, log_level=args.log_level))
    if args.port is not None:
        config = replace(config, broker=replace(config.broker, port=args.port))
    return config


# -- init, check --------------------------------------------------------------------------------

def cmd_init(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rmqtui init",
                                 description="Write a starter routemq.toml and app_routes/ (never overwrites).")
    ap.add_argument("directory", nargs="?", default=".")
    ap.add_argument("--from-routemq", metavar="DIR", help="write the routemq.toml of the RouteMQ project in DIR")
    ap.add_argument("--routers", default="app.routers", help="with --from-routemq: the routers package")
    args = ap.parse_args(argv)
    if args.from_routemq:
        from .routemq.commands import init_from_routemq

        return init_from_routemq(args.from_routemq, args.routers)
    from .engine.starter import init_project

    target = Path(args.directory)
    if target.exists() and not target.is_dir():
        return _fail(f"{target} is not a directory; give the directory to write the project into")
    try:
        written = init_project(target, on_skip=lambda p: print(f"kept existing {p}"))
    except OSError as exc:
        return _fail(f"cannot write into {target}: {exc.strerror}", exitcodes.FAILURE)
    for p in written:
        print(f"wrote {p}")
    if written:
        print("next: run `rmqtui` here (or `rmqtui --no-ui`), and `rmqtui load` in a second terminal")
    return exitcodes.OK


def cmd_check(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rmqtui check", description="Validate routemq.toml and exit "
                                 "(0 ok, 2 a problem, shown with its file, line, key and fix).")
    _config_arg(ap)
    ap.add_argument("--routemq-app", metavar="DIR", help="check the RouteMQ project in DIR instead")
    ap.add_argument("--routers", default="app.routers", help="with --routemq-app: the routers package")
    args = ap.parse_args(argv)
    if args.routemq_app:
        from .routemq.commands import check_routemq_app

        return check_routemq_app(args.routemq_app, args.routers)
    from .engine.config import ConfigError

    try:
        config = _load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    print(f"{config.path}: ok, {len(config.routes)} routes, {sum(r.workers for r in config.routes)} workers")
    return exitcodes.OK


# -- load ---------------------------------------------------------------------------------------

def cmd_load(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rmqtui load",
                                 description="Publish bounded test traffic to the routes of routemq.toml. "
                                             "Publishes only to the broker of the running `rmqtui` for the "
                                             "same config (its private socket), unless a broker is named with "
                                             "--host/--port or --broker-from-config. Exit status: 0 all "
                                             "acknowledged, 1 broker lost or unreachable, 2 bad input, "
                                             "3 no fleet running, 130 interrupted.")
    _config_arg(ap)
    ap.add_argument("-n", "--count", type=count, default=10000, help="messages to publish (default 10000)")
    ap.add_argument("-r", "--rate", type=rate, default=500.0, help="messages per second at most (default 500)")
    ap.add_argument("-q", "--qos", type=int, choices=[0, 1, 2], default=1)
    ap.add_argument("--route", action="append", help="only this route (repeatable)")
    ap.add_argument("--host", type=host, help="publish to this broker host instead of the running fleet's")
    ap.add_argument("--port", type=port, help="publish to this broker port instead of the running fleet's")
    ap.add_argument("--broker-from-config", action="store_true",
                    help="publish to the broker [broker] names (host, port, TLS, credentials), fleet or not")
    args = ap.parse_args(argv)
    from .engine.config import ConfigError
    from .engine.broker_sys import describe
    from .loadgen import BrokerLost, publish_load

    try:
        config = _load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    names = [r.name for r in config.routes]
    unknown = [name for name in args.route or [] if name not in names]
    if unknown:
        return _fail(f"no route called {', '.join(map(repr, unknown))} in {config.path.name}; "
                     f"routes: {', '.join(names)}")
    access = _load_target(config, args)
    if access is None:
        return _fail(f"no fleet is running for {config.path}, so there is no broker of yours to publish to; start "
                     f"it with `rmqtui` (or `rmqtui --no-ui`), or name a broker with --host/--port or "
                     f"--broker-from-config", exitcodes.NO_FLEET)
    where = describe(access)
    routes = [r for r in config.routes if not args.route or r.name in args.route]
    print(f"publishing {args.count} messages at up to {args.rate:g}/s, QoS {args.qos}, to {where} "
          f"({', '.join(r.name for r in routes)})", flush=True)
    try:
        result = publish_load(access, [r.pattern for r in routes], count=args.count, rate=args.rate, qos=args.qos,
                              progress=lambda n: print(f"  {n} sent", flush=True) if n % 10000 == 0 else None)
    except BrokerLost as exc:
        return _fail(str(exc), exitcodes.FAILURE)
    except (ConnectionError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        return _fail(f"cannot reach the broker at {where}: {exc}", exitcodes.FAILURE)
    print(f"sent {result.sent}, acknowledged {result.acknowledged}, in {result.seconds:.1f}s "
          f"({result.rate:.0f} msg/s)", flush=True)
    if args.qos and result.acknowledged < result.sent:
        return _fail(f"only {result.acknowledged} of {result.sent} messages were acknowledged", exitcodes.FAILURE)
    return exitcodes.OK


def _load_target(config, args):
    """The broker ``rmqtui load`` publishes to: one named on the command line or by --broker-from-config,
    else the running fleet's (read from its private state file), else None: never whatever happens to
    listen on the configured port."""
    from .engine import runtime
    from .engine.supervisor import runtime_state_path
    from .engine.protocol import broker_settings

    b = config.broker
    if args.host or args.port is not None or args.broker_from_config:
        return broker_settings(config.broker, args.host or b.host, args.port if args.port is not None else b.port)
    try:
        state = json.loads(runtime.read_private(runtime_state_path(config.path)))
        os.kill(int(state["pid"]), 0)
        access = broker_settings(config.broker, str(state["host"]), int(state["port"]), state.get("unix_path") or None)
    except (OSError, ValueError, KeyError, TypeError, runtime.RuntimePathError):
        return None
    return access


COMMANDS = {"init": cmd_init, "check": cmd_check, "load": cmd_load, "run": cmd_run, **ctl.COMMANDS}
_register_doctor(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rmqtui`` console script; returns a status from :mod:`rmqtui.exitcodes`."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        return cmd_run(argv)
    except BrokenPipeError:
        # The reader went away (`rmqtui load | head`): stop writing, without a traceback at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return exitcodes.FAILURE
    except KeyboardInterrupt:
        return _fail("interrupted", exitcodes.FORCED)


if __name__ == "__main__":
    sys.exit(main())
