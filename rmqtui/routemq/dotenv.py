"""A project's ``.env`` file, read the way RouteMQ projects expect, as pure functions.

:func:`read_dotenv` parses the file (``KEY=value``, ``export KEY=value``, quotes,
comments, ``${VAR}`` expansion); :func:`dotenv_overrides` keeps only the variables
the real environment does not set, so the environment always wins.
:func:`routemq_settings` turns RouteMQ's variable names into the rmqtui config keys
they mean, and :func:`apply_settings` applies those to a loaded config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*\Z")
_EXPAND = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
_TRUE = {"1", "true", "yes", "on"}  # RouteMQ's truth set for boolean variables
_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "WARN": "WARNING", "ERROR": "ERROR",
           "CRITICAL": "ERROR", "FATAL": "ERROR"}
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")
_GROUP = re.compile(r"[^/+#\x00]{1,200}\Z")


class DotEnvError(Exception):
    """A ``.env`` line or value rmqtui cannot use: file, line, what is wrong and the fix."""

    def __init__(self, path: Path | str, line: int | None, problem: str, fix: str) -> None:
        self.path, self.line, self.problem, self.fix = str(path), line, problem, fix
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}\n  fix: {fix}")


@dataclass(frozen=True, slots=True)
class DotEnv:
    """The variables of one ``.env`` file and the line each was set on (the last one wins)."""

    path: Path
    values: dict[str, str]
    lines: dict[str, int]

    def line_of(self, name: str) -> int | None:
        """The line that set ``name``, or ``None`` when it did not come from this file."""
        return self.lines.get(name)


def read_dotenv(path: Path | str, environ: Mapping[str, str] | None = None) -> DotEnv:
    """Parse ``path``; a missing file is an empty :class:`DotEnv`.  Raises :class:`DotEnvError`.

    ``${VAR}`` and ``${VAR:-default}`` in unquoted and double-quoted values expand from
    ``environ`` first, then from lines above (as python-dotenv does when RouteMQ loads it).
    """
    path = Path(path)
    environ = {} if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DotEnv(path, {}, {})
    except UnicodeDecodeError as e:
        raise DotEnvError(path, None, f"the file is not UTF-8 text ({e.reason} at byte {e.start})",
                          "save it as UTF-8") from None
    except OSError as e:
        raise DotEnvError(path, None, f"cannot read the file: {e.strerror}", "check its permissions") from None
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.match(raw)
        if not m:
            raise DotEnvError(path, number, f"{stripped[:60]!r} is not a NAME=value line",
                              "write one NAME=value per line (comments start with #)")
        name, value = m.group(1), m.group(2)
        values[name] = _value(path, number, value, lambda n: environ.get(n, values.get(n)))
        lines[name] = number
    return DotEnv(path, values, lines)


def _value(path: Path, number: int, raw: str, lookup) -> str:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = _closing_quote(raw, quote)
        if end < 0:
            raise DotEnvError(path, number, f"the value {raw[:40]!r} has no closing {quote}",
                              f"end the value with {quote} on the same line")
        rest = raw[end + 1:].strip()
        if rest and not rest.startswith("#"):
            raise DotEnvError(path, number, f"text after the closing quote: {rest[:40]!r}",
                              "put comments after a space and #, or quote the whole value")
        body = raw[1:end]
        if quote == "'":
            return body  # single quotes are literal
        body = re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), "\\" + e.group(1)), body)
        return _expand(body, lookup)
    value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
    return _expand(value, lookup)


def _closing_quote(raw: str, quote: str) -> int:
    i = 1
    while i < len(raw):
        if raw[i] == "\\" and quote == '"':
            i += 2
            continue
        if raw[i] == quote:
            return i
        i += 1
    return -1


def _expand(value: str, lookup) -> str:
    def one(m: re.Match) -> str:
        found = lookup(m.group(1))
        if found:
            return found
        return m.group(2) or ""

    return _EXPAND.sub(one, value)


def dotenv_overrides(dotenv: DotEnv, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``dotenv`` that ``environ`` does not set: the real environment always wins."""
    return {k: v for k, v in dotenv.values.items() if k not in environ}


def routemq_settings(env: Mapping[str, str], dotenv: DotEnv | None = None) -> dict[str, Any]:
    """RouteMQ's variables in ``env`` as rmqtui config keys (``"broker.port": 1883``...).

    Read: ``MQTT_BROKER`` (host; implies an external broker), ``MQTT_PORT``,
    ``MQTT_USERNAME``, ``MQTT_PASSWORD``, ``MQTT_TLS_ENABLED``/``_CA_CERTS``/``_CERTFILE``/
    ``_KEYFILE``/``_INSECURE``, ``MQTT_CLIENT_ID`` (the client-id prefix: RouteMQ builds its
    worker ids from it too), ``MQTT_GROUP_NAME`` and ``LOG_LEVEL`` (``ROUTEMQ_LOG_LEVEL``
    wins).  Relative TLS paths start at the ``.env`` file's directory.  A bad value raises
    :class:`DotEnvError` naming the line of ``dotenv`` that set it (or the variable).
    """
    source = dotenv.path if dotenv is not None else Path("environment")
    base = dotenv.path.parent if dotenv is not None else Path.cwd()

    def fail(name: str, problem: str, fix: str) -> DotEnvError:
        from_file = dotenv is not None and name in dotenv.values and dotenv.values[name] == env[name]
        line = dotenv.line_of(name) if from_file else None
        where = source if line else Path(f"environment variable {name}")
        return DotEnvError(where, line, f"{name}={env[name]!r}: {problem}", f"{fix}, or remove {name}")

    out: dict[str, Any] = {}
    host = env.get("MQTT_BROKER", "").strip()
    if host:
        out["broker.host"] = host
        out["broker.embedded"] = False
    port = env.get("MQTT_PORT", "").strip()
    if port:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise fail("MQTT_PORT", "not a TCP port", "set MQTT_PORT to a port such as 1883")
        out["broker.port"] = int(port)
    if "MQTT_USERNAME" in env:
        out["broker.username"] = env["MQTT_USERNAME"]
    if "MQTT_PASSWORD" in env:
        out["broker.password"] = env["MQTT_PASSWORD"]
    tls_files = {"MQTT_TLS_CA_CERTS": "ca", "MQTT_TLS_CERTFILE": "cert", "MQTT_TLS_KEYFILE": "key"}
    if env.get("MQTT_TLS_ENABLED", "").strip().lower() in _TRUE:
        for name, key in tls_files.items():
            value = env.get(name, "").strip()
            if value:
                path = Path(value).expanduser()
                path = path if path.is_absolute() else base / path
                if not path.is_file():
                    raise fail(name, f"the file {path} does not exist", f"point {name} at an existing file")
                out[f"broker.tls.{key}"] = str(path)
        out["broker.tls.insecure"] = env.get("MQTT_TLS_INSECURE", "").strip().lower() in _TRUE
    client_id = env.get("MQTT_CLIENT_ID", "").strip()
    if client_id:
        if not _CLIENT_ID.match(client_id):
            raise fail("MQTT_CLIENT_ID", "rmqtui uses it as the client-id prefix, which allows only "
                       "letters, digits, '_' and '-' (up to 128)", "use a plain prefix such as my-app")
        out["fleet.client_prefix"] = client_id
    group = env.get("MQTT_GROUP_NAME", "").strip()
    if group:
        if not _GROUP.match(group):
            raise fail("MQTT_GROUP_NAME", "a share group cannot contain '/', '+' or '#'",
                       "use a plain name such as workers")
        out["fleet.group"] = group
    level = (env.get("ROUTEMQ_LOG_LEVEL", "").strip() and "ROUTEMQ_LOG_LEVEL") or (
        env.get("LOG_LEVEL", "").strip() and "LOG_LEVEL")
    if level:
        value = env[level].strip().upper()
        if value not in _LEVELS:
            raise fail(level, "not a log level", "use DEBUG, INFO, WARNING or ERROR")
        out["fleet.log_level"] = _LEVELS[value]
    return out


def apply_settings(config: Any, settings: Mapping[str, Any]) -> Any:
    """``config`` (an rmqtui ``Config``) with ``settings`` from :func:`routemq_settings` applied."""
    broker, fleet = config.broker, config.fleet
    tls: dict[str, Any] = {}
    for key, value in settings.items():
        section, _, name = key.partition(".")
        if name.startswith("tls."):
            tls[name[4:]] = value
        elif section == "broker":
            broker = replace(broker, **{name: value})
        else:
            fleet = replace(fleet, **{name: value})
    if tls:
        from rmqtui.engine.config import TLSConfig

        broker = replace(broker, tls=replace(broker.tls or TLSConfig(), **tls))
    return replace(config, broker=broker, fleet=fleet)


def project_env(directory: Path | str, environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """For a config in ``directory``: the environment with ``.env`` under it, and the settings it makes.

    Pass the first to the config loader (``load(path, env=...)``) and the second to
    :func:`apply_settings`: ``.env`` then counts exactly like the real environment,
    which still wins.  Raises :class:`DotEnvError`.
    """
    dotenv = read_dotenv(Path(directory) / ".env", environ)
    merged = {**dotenv_overrides(dotenv, environ), **environ}
    return merged, routemq_settings(merged, dotenv)
