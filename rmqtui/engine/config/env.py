"""Environment overrides with RouteMQ's names, as one pure function of the file's values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from .checks import CLIENT_PREFIX_RE, check_group, check_value
from .errors import ConfigError
from .model import LOG_LEVELS, BrokerConfig, FleetConfig, spec_of

#: Variable → the key it overrides (documented in the template and the README).
ENV_KEYS = {
    "MQTT_BROKER": "broker.host",
    "MQTT_PORT": "broker.port",
    "MQTT_USERNAME": "broker.username",
    "MQTT_PASSWORD": "broker.password",
    "MQTT_GROUP_NAME": "fleet.group",
    "ROUTEMQ_LOG_LEVEL": "fleet.log_level",
    "RMQTUI_HOST_ID": "fleet.host_id",
}


def apply_env(path: Path, broker: BrokerConfig, fleet: FleetConfig,
              env: Mapping[str, str]) -> tuple[BrokerConfig, FleetConfig]:
    """The file's ``[broker]`` and ``[fleet]`` with the environment's overrides; raises :class:`ConfigError`.

    ``MQTT_BROKER`` sets the host and implies an external broker.  The password
    comes from ``password_env``'s variable, and ``MQTT_PASSWORD`` wins over it.
    An empty value counts as unset, except for the user name and password.
    """
    def fail(var: str, problem: str, fix: str) -> ConfigError:
        shown = env[var] if len(env[var]) <= 60 else env[var][:60] + "..."
        return ConfigError(path, f"{var}={shown!r}: {problem}", f"{fix}, or unset {var}", key=f"env {var}")

    b: dict[str, object] = {}
    f: dict[str, object] = {}
    host = env.get("MQTT_BROKER", "").strip()
    if host:
        problem = check_value("MQTT_BROKER", spec_of(BrokerConfig, "host"), host)
        if problem:
            raise fail("MQTT_BROKER", problem[0], "set MQTT_BROKER to the broker's host name or address")
        b.update(host=host, embedded=False)
    raw_port = env.get("MQTT_PORT", "").strip()
    if raw_port:
        try:
            port = int(raw_port)
        except ValueError:
            raise fail("MQTT_PORT", "not a number", "set MQTT_PORT to a TCP port such as 1883") from None
        if check_value("MQTT_PORT", spec_of(BrokerConfig, "port"), port):
            raise fail("MQTT_PORT", "out of range", "set MQTT_PORT to a TCP port between 1 and 65535")
        b["port"] = port
    if "MQTT_USERNAME" in env:
        b["username"] = env["MQTT_USERNAME"]
    password = env.get(broker.password_env, "") if broker.password_env else ""
    b["password"] = env.get("MQTT_PASSWORD", password)
    group = env.get("MQTT_GROUP_NAME", "").strip()
    if group:
        problem = check_group("fleet.group", group)
        if problem:
            raise fail("MQTT_GROUP_NAME", problem[0], "set MQTT_GROUP_NAME to a plain name such as workers")
        f["group"] = group
    level = env.get("ROUTEMQ_LOG_LEVEL", "").strip()
    if level:
        if level.upper() not in LOG_LEVELS:
            raise fail("ROUTEMQ_LOG_LEVEL", "not a log level",
                       f"set ROUTEMQ_LOG_LEVEL to one of {', '.join(LOG_LEVELS)}")
        f["log_level"] = level.upper()
    hid = env.get("RMQTUI_HOST_ID", "").strip()
    if hid:
        if not CLIENT_PREFIX_RE.match(hid) or check_value("RMQTUI_HOST_ID", spec_of(FleetConfig, "host_id"), hid):
            raise fail("RMQTUI_HOST_ID", "not a valid host id",
                       "set RMQTUI_HOST_ID to letters, digits, '_' and '-' (at most 64), e.g. host1")
        f["host_id"] = hid
    return replace(broker, **b), replace(fleet, **f)
