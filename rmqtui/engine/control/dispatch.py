"""The control methods that change a fleet: their parameters, checked, and the FleetControl call each makes."""

from __future__ import annotations

from typing import Callable

from ..api import CommandResult, FleetControl

#: Methods every role may call.
ANY_ROLE = frozenset({"hello", "snapshot", "logs", "subscribe", "unsubscribe", "metrics"})


class RequestError(Exception):
    """A request the server answers with a JSON-RPC error (``code`` as in JSON-RPC 2.0)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _str(params: dict, key: str, *, optional: bool = False) -> str | None:
    value = params.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise RequestError(-32602, f"{key} must be a non-empty string")
    return value


def _count(params: dict) -> int:
    value = params.get("count")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RequestError(-32602, "count must be a non-negative integer")
    return value


def _timeout(params: dict) -> float:
    value = params.get("timeout", 10.0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 3600:
        raise RequestError(-32602, "timeout must be a number of seconds between 0 and 3600")
    return float(value)


def _stop(fleet: FleetControl, params: dict) -> CommandResult:
    fleet.stop(_timeout(params))
    return CommandResult.accepted("fleet stopped")


#: Method name -> how it calls the fleet.  Only the operator role may call these.
COMMANDS: dict[str, Callable[[FleetControl, dict], CommandResult]] = {
    "add": lambda f, p: f.add_worker(_str(p, "route")),
    "remove": lambda f, p: f.remove_worker(_str(p, "route"), _str(p, "worker", optional=True)),
    "scale": lambda f, p: f.scale(_str(p, "route"), _count(p)),
    "restart": lambda f, p: f.restart_worker(_str(p, "worker")),
    "kill": lambda f, p: f.kill_worker(_str(p, "worker")),
    "set_log_level": lambda f, p: f.set_log_level(_str(p, "level"), _str(p, "worker", optional=True)),
    "reload": lambda f, p: f.reload_config(),
    "save": lambda f, p: f.save_config(),
    "stop": _stop,
}


def call_command(fleet: FleetControl, method: str, params: dict) -> CommandResult:
    """Check ``params`` and make the call; :class:`RequestError` for bad parameters."""
    result = COMMANDS[method](fleet, params)
    if not isinstance(result, CommandResult):
        raise RequestError(-32603, f"{method}: the fleet answered {result!r}, not a CommandResult")
    return result
