"""``routemq.toml`` as frozen dataclasses: loading, validation, env overrides, saving.

:func:`load` reads the file once and checks everything a worker would trip on
later (types, ranges, topic patterns, handlers), so a mistake is reported at
start-up with the file, line, key and a fix.  Handlers are checked statically
(the file exists, the function is defined): the supervisor never imports user
code, so a broken handler can only fail its worker.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
import re
import socket
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from .topics import TopicError, TopicPattern, shared_filter


class ConfigError(Exception):
    """An invalid configuration: says which file, where, what is wrong and how to fix it."""

    def __init__(self, path: str | Path, problem: str, fix: str = "", *, line: int | None = None,
                 key: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        self.line = line
        self.key = key
        super().__init__(self.render())

    def render(self) -> str:
        """One or two lines for the operator: ``file:line: key: problem`` then ``fix: ...``."""
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
        head = f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"
        return f"{head}\n  fix: {self.fix}" if self.fix else head


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Optional TLS towards an external broker."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where the fleet's broker is, and how to talk to it."""

    embedded: bool = True
    host: str = "127.0.0.1"
    port: int = 1883
    protocol: str = "v3.1.1"  # "v5" or "v3.1.1"
    username: str = ""
    password_env: str = "MQTT_PASSWORD"
    password: str = field(default="", repr=False)  # resolved from the environment, never from the file
    keepalive: int = 30
    tls: TLSConfig | None = None
    mosquitto: str = "mosquitto"  # binary for the embedded broker


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """Fleet-wide settings."""

    group: str = "workers"
    handlers: str = "app_routes"
    client_prefix: str = ""  # default: rmqtui-<hostname>
    log_level: str = "INFO"
    heartbeat_interval: float = 1.0
    hang_timeout: float = 30.0  # a worker silent (or stuck in one message) this long is killed
    drain_timeout: float = 10.0
    handler_retries: int = 2
    dead_letter_topic: str = "rmqtui/dead/{route}"
    poison_crashes: int = 3


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """One ``[[routes]]`` entry."""

    name: str
    topic: str
    handler: str  # "module:function"
    shared: bool = True
    workers: int = 1
    qos: int = 1
    group: str | None = None  # per-route share group; default FleetConfig.group

    @property
    def pattern(self) -> TopicPattern:
        """The parsed topic pattern (validated by :func:`load`)."""
        return TopicPattern.parse(self.topic)

    @property
    def module(self) -> str:
        """The handler's module, e.g. ``app_routes.sensors``."""
        return self.handler.partition(":")[0]

    @property
    def function(self) -> str:
        """The handler's function name, e.g. ``process_data``."""
        return self.handler.partition(":")[2]


@dataclass(frozen=True, slots=True)
class Config:
    """The whole file, after environment overrides."""

    path: Path
    broker: BrokerConfig
    fleet: FleetConfig
    routes: tuple[RouteConfig, ...]

    @property
    def root(self) -> Path:
        """The directory holding the config; handler packages are imported from here."""
        return self.path.parent

    def route(self, name: str) -> RouteConfig:
        """The route called ``name`` (KeyError when missing)."""
        for r in self.routes:
            if r.name == name:
                return r
        raise KeyError(name)

    def group_for(self, route: RouteConfig) -> str:
        """The share group ``route`` joins: its own, else the fleet's."""
        return route.group or self.fleet.group

    def subscription(self, route: RouteConfig) -> str:
        """What a worker of ``route`` subscribes to: ``$share/<group>/<filter>`` or the plain filter."""
        filter = route.pattern.filter
        return shared_filter(self.group_for(route), filter) if route.shared else filter


def client_prefix(config: Config) -> str:
    """The fleet's client-id prefix: ``fleet.client_prefix`` or ``rmqtui-<host name>``.

    The host name is part of the default so that fleets on several hosts sharing
    one clustered broker never collide on client ids.
    """
    if config.fleet.client_prefix:
        return config.fleet.client_prefix
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()).strip("-") or "host"
    return f"rmqtui-{host}"


# ---------------------------------------------------------------------------------------------
# Loading

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PROTOCOLS = ("v5", "v3.1.1")

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*\Z")
_HANDLER_RE = re.compile(rf"({_IDENT}(?:\.{_IDENT})*):({_IDENT})\Z")
_ROUTE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_CLIENT_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]*\Z")
_NUMBER_RE = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")

_TOP_KEYS = ("broker", "fleet", "routes")
_BROKER_KEYS = ("embedded", "host", "port", "protocol", "username", "password_env", "keepalive",
                "mosquitto", "tls")
_TLS_KEYS = ("ca", "cert", "key", "insecure")
_FLEET_KEYS = ("group", "handlers", "client_prefix", "log_level", "heartbeat_interval", "hang_timeout",
               "drain_timeout", "handler_retries", "dead_letter_topic", "poison_crashes")
_ROUTE_KEYS = ("name", "topic", "handler", "shared", "workers", "qos", "group")

_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


class _Locator:
    """Finds the line of a dotted key such as ``routes[2].qos`` by scanning the raw text.

    Good enough, not a TOML parser: it follows ``[table]`` and ``[[array]]`` headers
    (counting array entries) and ``key =`` lines, and skips multi-line strings.
    A key it cannot find falls back to its nearest enclosing table.
    """

    _HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
    _KEY = re.compile(r"""\s*([A-Za-z0-9_\-."' ]+?)\s*=""")

    def __init__(self, text: str) -> None:
        self._lines: dict[str, int] = {}
        counts: dict[str, int] = {}
        prefix = ""
        open_quote: str | None = None
        for number, raw in enumerate(text.splitlines(), 1):
            if open_quote is not None:
                if raw.count(open_quote) % 2 == 1:
                    open_quote = None
                continue
            header = self._HEADER.match(raw)
            if header:
                name = self._norm(header.group(2))
                if header.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    prefix = f"{name}[{index}]"
                else:
                    prefix = name
                self._lines.setdefault(prefix, number)
                continue
            key = self._KEY.match(raw)
            if key:
                dotted = self._norm(key.group(1))
                self._lines.setdefault(f"{prefix}.{dotted}" if prefix else dotted, number)
                rest = raw[key.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        open_quote = quote

    @staticmethod
    def _norm(dotted: str) -> str:
        return ".".join(part.strip().strip("\"'") for part in dotted.split("."))

    def line_of(self, key: str) -> int | None:
        """The line of ``key``, else of its nearest enclosing table, else ``None``."""
        while key:
            if key in self._lines:
                return self._lines[key]
            if key.endswith("]"):
                key = key[: key.rfind("[")]
            else:
                key = key.rpartition(".")[0]
        return None


class _Loader:
    """One load: the file, its locator and the environment, plus the checks that raise."""

    def __init__(self, path: Path, text: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.root = path.parent
        self.locator = _Locator(text)
        self.env = env

    # -- errors -------------------------------------------------------------------------------

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        """A :class:`ConfigError` at ``key`` (the caller raises it, so control flow stays visible)."""
        return ConfigError(self.path, problem, fix, line=self.locator.line_of(key), key=key)

    def check_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str,
                   label: str) -> None:
        for key in table:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail(f"{where}.{key}" if where else key, f"unknown key {key!r} in {label}",
                            f"{hint}valid keys are: {', '.join(allowed)}")

    def table(self, parent: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(where, f"{where} must be a table, got {_describe(value)}",
                            f"write it as a [{where}] section with one key = value per line")
        return value

    def get(self, table: Mapping[str, Any], key: str, where: str, kind: type, default: Any,
            example: Any = None) -> Any:
        """``table[key]`` checked against ``kind`` (a bool is not an int), or ``default``."""
        if key not in table:
            return default
        value = table[key]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            sample = example if example is not None else default
            raise self.fail(f"{where}.{key}",
                            f"{key} must be {_KIND_NAMES[kind]}, got {_describe(value)}",
                            _type_fix(key, kind, value, sample))
        return float(value) if kind is float else value

    # -- sections -----------------------------------------------------------------------------

    def broker(self, doc: Mapping[str, Any]) -> BrokerConfig:
        t = self.table(doc, "broker", "broker")
        self.check_keys(t, _BROKER_KEYS, "broker", "[broker]")
        d = BrokerConfig()
        embedded = self.get(t, "embedded", "broker", bool, d.embedded)
        host = self.get(t, "host", "broker", str, d.host)
        if not host.strip():
            raise self.fail("broker.host", "host is empty",
                            'set host = "127.0.0.1" (or the address of your broker)')
        port = self.get(t, "port", "broker", int, d.port)
        if not 1 <= port <= 65535:
            raise self.fail("broker.port", f"port {port} is out of range",
                            "use a TCP port between 1 and 65535, e.g. port = 1883")
        protocol = self.get(t, "protocol", "broker", str, d.protocol, "v5")
        if protocol not in PROTOCOLS:
            raise self.fail("broker.protocol", f"unknown MQTT protocol {protocol!r}",
                            'write protocol = "v5" or protocol = "v3.1.1"')
        username = self.get(t, "username", "broker", str, d.username, "worker")
        password_env = self.get(t, "password_env", "broker", str, d.password_env)
        keepalive = self.get(t, "keepalive", "broker", int, d.keepalive)
        if not 0 <= keepalive <= 65535:
            raise self.fail("broker.keepalive", f"keepalive {keepalive} is out of range",
                            "use seconds between 0 and 65535, e.g. keepalive = 30")
        mosquitto = self.get(t, "mosquitto", "broker", str, d.mosquitto)
        if not mosquitto.strip():
            raise self.fail("broker.mosquitto", "mosquitto is empty",
                            'set mosquitto = "mosquitto" or the full path of the binary')
        tls = self.tls(t) if "tls" in t else None

        # RouteMQ's environment conventions win over the file.
        env_host = self.env.get("MQTT_BROKER", "").strip()
        if env_host:
            host, embedded = env_host, False
        env_port = self.env.get("MQTT_PORT", "").strip()
        if env_port:
            port = self.env_port(env_port)
        if "MQTT_USERNAME" in self.env:
            username = self.env["MQTT_USERNAME"]
        password = self.env.get(password_env, "") if password_env else ""
        if "MQTT_PASSWORD" in self.env:
            password = self.env["MQTT_PASSWORD"]
        return BrokerConfig(embedded=embedded, host=host, port=port, protocol=protocol,
                            username=username, password_env=password_env, password=password,
                            keepalive=keepalive, tls=tls, mosquitto=mosquitto)

    def env_port(self, raw: str) -> int:
        try:
            port = int(raw)
        except ValueError:
            raise ConfigError(self.path, f"MQTT_PORT={raw!r} is not a number",
                              "set MQTT_PORT to a TCP port such as 1883, or unset it",
                              key="env MQTT_PORT") from None
        if not 1 <= port <= 65535:
            raise ConfigError(self.path, f"MQTT_PORT={port} is out of range",
                              "set MQTT_PORT to a TCP port between 1 and 65535, or unset it",
                              key="env MQTT_PORT")
        return port

    def tls(self, broker: Mapping[str, Any]) -> TLSConfig:
        t = self.table(broker, "tls", "broker.tls")
        self.check_keys(t, _TLS_KEYS, "broker.tls", "[broker.tls]")
        files: dict[str, str | None] = {}
        for name in ("ca", "cert", "key"):
            value = self.get(t, name, "broker.tls", str, None, f"certs/{name}.pem")
            if value is None:
                files[name] = None
                continue
            path = Path(value).expanduser()
            if not path.is_absolute():
                path = self.root / path
            if not path.is_file():
                raise self.fail(f"broker.tls.{name}", f"the TLS {name} file {value!r} does not exist "
                                f"(looked at {path})",
                                "fix the path (relative paths start at the config's directory) "
                                "or remove the key")
            files[name] = str(path)
        if (files["cert"] is None) != (files["key"] is None):
            missing = "key" if files["key"] is None else "cert"
            raise self.fail(f"broker.tls.{missing}", "a client certificate needs both cert and key",
                            f"add {missing} = \"...\" to [broker.tls], or remove the other one")
        insecure = self.get(t, "insecure", "broker.tls", bool, False)
        return TLSConfig(ca=files["ca"], cert=files["cert"], key=files["key"], insecure=insecure)

    def group(self, group: str, key: str) -> str:
        try:
            shared_filter(group, "x")
        except TopicError as e:
            raise self.fail(key, str(e), 'use a plain name such as group = "workers"') from None
        return group

    def fleet(self, doc: Mapping[str, Any]) -> FleetConfig:
        t = self.table(doc, "fleet", "fleet")
        self.check_keys(t, _FLEET_KEYS, "fleet", "[fleet]")
        d = FleetConfig()
        w = "fleet"
        group = self.group(self.get(t, "group", w, str, d.group), "fleet.group")
        handlers = self.get(t, "handlers", w, str, d.handlers)
        if handlers and not _MODULE_RE.match(handlers):
            raise self.fail("fleet.handlers", f"handlers {handlers!r} is not a Python package name",
                            'write the package your handlers live in, e.g. handlers = "app_routes"')
        prefix = self.get(t, "client_prefix", w, str, d.client_prefix, "rmqtui-host1")
        if not _CLIENT_PREFIX_RE.match(prefix):
            raise self.fail("fleet.client_prefix", f"client_prefix {prefix!r} has characters brokers "
                            "may refuse in client ids",
                            "use only letters, digits, '_' and '-', or remove the key for "
                            "rmqtui-<hostname>")
        log_level = self.log_level(self.get(t, "log_level", w, str, d.log_level), "fleet.log_level")
        heartbeat = self.get(t, "heartbeat_interval", w, float, d.heartbeat_interval)
        if heartbeat <= 0:
            raise self.fail("fleet.heartbeat_interval", "heartbeat_interval must be positive",
                            "use about a second, e.g. heartbeat_interval = 1.0")
        hang = self.get(t, "hang_timeout", w, float, d.hang_timeout)
        if hang <= heartbeat:
            raise self.fail("fleet.hang_timeout", f"hang_timeout ({hang:g}s) must be longer than "
                            f"heartbeat_interval ({heartbeat:g}s), or every worker looks hung",
                            "set hang_timeout to many heartbeats, e.g. hang_timeout = 30")
        drain = self.get(t, "drain_timeout", w, float, d.drain_timeout)
        if drain < 0:
            raise self.fail("fleet.drain_timeout", "drain_timeout cannot be negative",
                            "use seconds, e.g. drain_timeout = 10")
        retries = self.get(t, "handler_retries", w, int, d.handler_retries)
        if retries < 0:
            raise self.fail("fleet.handler_retries", "handler_retries cannot be negative",
                            "use 0 to never retry, e.g. handler_retries = 2")
        dead = self.get(t, "dead_letter_topic", w, str, d.dead_letter_topic)
        probe = dead.replace("{route}", "r")
        if dead and (any(c in probe for c in "+#{}\x00") or probe.startswith("$")):
            raise self.fail("fleet.dead_letter_topic", f"dead_letter_topic {dead!r} is not a topic "
                            "one can publish to",
                            'use a plain topic, optionally with {route}, e.g. "rmqtui/dead/{route}", '
                            'or "" to drop poison messages')
        poison = self.get(t, "poison_crashes", w, int, d.poison_crashes)
        if poison < 1:
            raise self.fail("fleet.poison_crashes", "poison_crashes must be at least 1",
                            "set how many worker crashes on one message make it poison, "
                            "e.g. poison_crashes = 3")

        env_group = self.env.get("MQTT_GROUP_NAME", "").strip()
        if env_group:
            try:
                shared_filter(env_group, "x")
            except TopicError as e:
                raise ConfigError(self.path, f"MQTT_GROUP_NAME={env_group!r}: {e}",
                                  "set MQTT_GROUP_NAME to a plain name such as workers, or unset it",
                                  key="env MQTT_GROUP_NAME") from None
            group = env_group
        env_level = self.env.get("ROUTEMQ_LOG_LEVEL", "").strip()
        if env_level:
            if env_level.upper() not in LOG_LEVELS:
                raise ConfigError(self.path, f"ROUTEMQ_LOG_LEVEL={env_level!r} is not a log level",
                                  f"set ROUTEMQ_LOG_LEVEL to one of {', '.join(LOG_LEVELS)}, "
                                  "or unset it", key="env ROUTEMQ_LOG_LEVEL")
            log_level = env_level.upper()
        return FleetConfig(group=group, handlers=handlers, client_prefix=prefix, log_level=log_level,
                           heartbeat_interval=heartbeat, hang_timeout=hang, drain_timeout=drain,
                           handler_retries=retries, dead_letter_topic=dead, poison_crashes=poison)

    def log_level(self, value: str, key: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise self.fail(key, f"unknown log level {value!r}",
                            f"use one of {', '.join(LOG_LEVELS)}, e.g. log_level = \"INFO\"")
        return value.upper()

    def routes(self, doc: Mapping[str, Any], fleet: FleetConfig) -> tuple[RouteConfig, ...]:
        raw = doc.get("routes")
        if isinstance(raw, dict):
            raise self.fail("routes", "routes is a single table",
                            "write each route as its own [[routes]] section (double brackets)")
        if raw is None or raw == []:
            raise self.fail("routes", "no routes are defined",
                            "add at least one [[routes]] section with name, topic and handler "
                            "(`rmqtui init` writes an example)")
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            raise self.fail("routes", f"routes must be [[routes]] sections, got {_describe(raw)}",
                            "write each route as its own [[routes]] section (double brackets)")
        routes: list[RouteConfig] = []
        seen: dict[str, int] = {}
        for i, table in enumerate(raw):
            route = self.route(i, table, fleet)
            if route.name in seen:
                raise self.fail(f"routes[{i}].name", f"route name {route.name!r} is used twice "
                                f"(routes[{seen[route.name]}] and routes[{i}])",
                                "give every route its own name")
            seen[route.name] = i
            routes.append(route)
        return tuple(routes)

    def route(self, i: int, t: Mapping[str, Any], fleet: FleetConfig) -> RouteConfig:
        w = f"routes[{i}]"
        label = f"[[routes]] #{i + 1}" + (f" ({t['name']!r})" if isinstance(t.get("name"), str) else "")
        self.check_keys(t, _ROUTE_KEYS, w, label)
        examples = {"name": "sensor-data", "topic": "sensors/{device_id}/data",
                    "handler": "app_routes.sensors:process_data"}
        for key, example in examples.items():
            if key not in t:
                raise self.fail(f"{w}.{key}", f"{label} has no {key}",
                                f"add {key} = \"{example}\" to it")
        name = self.get(t, "name", w, str, "", "sensor-data")
        if not _ROUTE_NAME_RE.match(name):
            raise self.fail(f"{w}.name", f"route name {name!r} is not usable in client ids and topics",
                            "use letters, digits, '-', '_' and '.', starting with a letter or digit")
        topic = self.get(t, "topic", w, str, "", "sensors/{device_id}/data")
        try:
            TopicPattern.parse(topic)
        except TopicError as e:
            raise self.fail(f"{w}.topic", f"route {name!r}: {e}",
                            'write a topic such as "sensors/{device_id}/data" '
                            '(one {name} per level, {rest...} only last)') from None
        handler = self.get(t, "handler", w, str, "", "app_routes.sensors:process_data")
        shared = self.get(t, "shared", w, bool, True)
        workers = self.get(t, "workers", w, int, 1)
        if workers < 1:
            raise self.fail(f"{w}.workers", f"route {name!r} asks for {workers} workers",
                            "use workers = 1 or more (stop a route by removing it)")
        if not shared and workers > 1:
            raise self.fail(f"{w}.workers", f"route {name!r} is not shared but asks for {workers} "
                            "workers: every worker would receive every message",
                            "set shared = true to split messages between workers, or workers = 1")
        qos = self.get(t, "qos", w, int, 1)
        if qos not in (0, 1, 2):
            raise self.fail(f"{w}.qos", f"route {name!r}: qos {qos} is not an MQTT QoS",
                            "use qos = 0 (at most once), 1 (at least once) or 2 (exactly once)")
        group = self.get(t, "group", w, str, None, "workers")
        if group is not None:
            self.group(group, f"{w}.group")
        handler = self.handler(f"{w}.handler", name, handler, fleet.handlers)
        return RouteConfig(name=name, topic=topic, handler=handler, shared=shared, workers=workers,
                           qos=qos, group=group)

    # -- handlers -----------------------------------------------------------------------------

    def handler(self, key: str, route: str, handler: str, package: str) -> str:
        """Check ``module:function`` statically; returns it with the module fully qualified.

        A module not found as written is looked up inside ``fleet.handlers``, so
        ``sensors:process_data`` means ``app_routes.sensors:process_data``.
        """
        m = _HANDLER_RE.match(handler)
        if not m:
            raise self.fail(key, f"route {route!r}: handler {handler!r} is not in 'module:function' "
                            "form", 'write e.g. handler = "app_routes.sensors:process_data"')
        module, function = m.groups()
        found, source = self.find_module(module)
        if not found and package and not module.startswith(package + "."):
            found, source = self.find_module(f"{package}.{module}", local_only=True)
            if found:
                module = f"{package}.{module}"
        if not found:
            raise self.fail(key, f"route {route!r}: handler module {module!r} was not found "
                            f"(looked in {self.root} and the installed packages)",
                            f"create {self.root / Path(*module.split('.'))}.py or fix the module name")
        if source is not None:
            self.check_function(key, route, module, function, source)
        return f"{module}:{function}"

    def find_module(self, module: str, *, local_only: bool = False) -> tuple[bool, Path | None]:
        """(found, source file); source is ``None`` for a module without Python source to read.

        Walks the config's directory first, without importing anything.  Only a
        module whose top-level package is not there falls back to ``find_spec``,
        which imports parent packages (installed ones, never the project's).
        """
        parts = module.split(".")
        for candidate in (self.root.joinpath(*parts[:-1], parts[-1] + ".py"),
                          self.root.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return True, candidate
        if local_only or (self.root / parts[0]).exists() or (self.root / f"{parts[0]}.py").exists():
            return False, None
        saved = list(sys.path)
        sys.path.insert(0, str(self.root))
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            spec = None
        except Exception as e:  # a parent package failed to import: report it, don't hide it
            raise ConfigError(self.path, f"looking up handler module {module!r} failed: {e!r}",
                              "fix the package it belongs to, or the module name") from e
        finally:
            sys.path[:] = saved
        if spec is None:
            return False, None
        origin = spec.origin
        if origin and origin.endswith(".py"):
            return True, Path(origin)
        if spec.submodule_search_locations is not None and not origin:
            return False, None  # a namespace package: a directory, not a module with functions
        return True, None  # built-in or compiled: nothing to check statically

    def check_function(self, key: str, route: str, module: str, function: str, source: Path) -> None:
        try:
            tree = ast.parse(source.read_bytes(), filename=str(source))
        except SyntaxError as e:
            raise ConfigError(source, f"handler module {module!r} of route {route!r} "
                              f"(in {self.path}) has a syntax error: {e.msg}",
                              "fix the syntax error; workers could not import this module",
                              line=e.lineno, key=key) from None
        except ValueError as e:  # e.g. NUL bytes in the source
            raise ConfigError(source, f"handler module {module!r} of route {route!r} cannot be "
                              f"parsed: {e}", "fix the file; workers could not import it",
                              key=key) from None
        names = _top_level_names(tree.body)
        if function in names:
            return
        close = difflib.get_close_matches(function, sorted(names), n=1, cutoff=0.6)
        hint = f"did you mean {module}:{close[0]}? otherwise " if close else ""
        raise self.fail(key, f"route {route!r}: module {module!r} ({source}) defines no {function!r}",
                        f"{hint}define `def {function}(msg):` at the top level of {source.name}")


def _top_level_names(body: list[ast.stmt]) -> set[str]:
    """Names bound at module level, looking into if/try/with blocks as Python would run them."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.AsyncWith)):
            for block in ("body", "orelse", "finalbody"):
                names |= _top_level_names(getattr(node, block, []))
            for h in getattr(node, "handlers", []):
                names |= _top_level_names(h.body)
    return names


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _type_fix(key: str, kind: type, value: Any, example: Any) -> str:
    if isinstance(value, str) and kind in (int, float) and _NUMBER_RE.fullmatch(value.strip()):
        return f"remove the quotes: {key} = {value.strip()}"
    if kind is bool:
        return f"write {key} = true or {key} = false (no quotes)"
    if kind is int and isinstance(value, float) and value.is_integer():
        return f"write a whole number: {key} = {int(value)}"
    sample = tomli_w.dumps({key: example}).strip() if example is not None else f"{key} = ..."
    return f"write it as {_KIND_NAMES[kind]}, e.g. {sample}"


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``routemq.toml``, apply environment overrides; raises :class:`ConfigError`.

    ``env`` defaults to ``os.environ``.  Overrides (RouteMQ's names): ``MQTT_BROKER``
    (host, and implies an external broker), ``MQTT_PORT``, ``MQTT_USERNAME``,
    ``MQTT_PASSWORD``, ``MQTT_GROUP_NAME``, ``ROUTEMQ_LOG_LEVEL``.  An empty
    value counts as unset, except for the user name and password.
    """
    path = Path(path).absolute()
    env = os.environ if env is None else env
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "the config file does not exist",
                          "run `rmqtui init` to write a starter routemq.toml, or pass its path") from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, f"the file is not UTF-8 text ({e.reason} at byte {e.start})",
                          "save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(path, f"cannot read the file: {e.strerror}",
                          "check the path and its permissions") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        found = re.search(r"at line (\d+)", message)
        raise ConfigError(path, f"invalid TOML: {message}",
                          "fix the syntax on that line (strings need quotes, one key = value per line, "
                          "sections as [name] or [[routes]])",
                          line=int(found.group(1)) if found else None) from None
    loader = _Loader(path, text, env)
    loader.check_keys(doc, _TOP_KEYS, "", "the file")
    broker = loader.broker(doc)
    fleet = loader.fleet(doc)
    routes = loader.routes(doc, fleet)
    return Config(path=path, broker=broker, fleet=fleet, routes=routes)


# ---------------------------------------------------------------------------------------------
# Saving

def save_worker_counts(config: Config, counts: Mapping[str, int]) -> Path:
    """Write ``counts`` (route name → workers) into ``config.path``; returns the backup's path.

    The file is re-read so that edits made since loading survive; only each
    route's ``workers`` changes.  The previous file is kept as ``<name>.bak`` and the
    new one replaces it atomically.  tomli-w does not keep comments.
    """
    path = config.path
    try:
        original = path.read_bytes()
        doc = tomllib.loads(original.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(path, f"cannot re-read the config to save worker counts: {e}",
                          "fix or restore the file, then save again") from e
    routes = doc.get("routes")
    if not isinstance(routes, list):
        raise ConfigError(path, "the file no longer has [[routes]] sections",
                          "restore the file, then save again", key="routes")
    index = {r.get("name"): i for i, r in enumerate(routes) if isinstance(r, dict)}
    for name, count in counts.items():
        if name not in index:
            raise ConfigError(path, f"route {name!r} is no longer in the file",
                              "reload the config or add the route back, then save again", key="routes")
        key = f"routes[{index[name]}].workers"
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ConfigError(path, f"cannot save {count!r} workers for route {name!r}",
                              "keep at least one worker per route (remove the route to stop it)",
                              key=key)
        route = routes[index[name]]
        if count > 1 and route.get("shared", True) is False:
            raise ConfigError(path, f"route {name!r} is not shared, so it cannot have {count} workers",
                              "set shared = true on the route first", key=key)
        route["workers"] = count
    backup = path.with_name(path.name + ".bak")
    _atomic_write(backup, original)
    _atomic_write(path, tomli_w.dumps(doc).encode("utf-8"))
    return backup


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory + fsync + rename, keeping the old file's mode."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a new file from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):
        # The rename is durable only once the directory entry is on disk.
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
