"""Reading ``routemq.toml``: the file itself, its sections by their declared settings, the rules
between settings, and the handlers' static check."""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checks import (
    CLIENT_PREFIX_RE,
    ROUTE_NAME_RE,
    check_dead_letter_topic,
    check_group,
    check_route_topic,
    check_topic_limits,
    check_type,
    check_value,
    describe,
)
from .env import apply_env
from .errors import ConfigError
from .handlers import MODULE_RE, check_handler
from .locate import Locator
from .model import MAX_CONFIG_BYTES, BrokerConfig, Config, FleetConfig, RouteConfig, TLSConfig, settings_of, spec_of

_TOP_KEYS = ("broker", "fleet", "routes", "metrics")
_REQUIRED_ROUTE_KEYS = ("name", "topic", "handler")


def read_text(path: Path) -> str:
    """The file as text: a regular file under 1 MiB, UTF-8 (a leading BOM is dropped)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(path, "the config file does not exist",
                          "run `rmqtui init` to write a starter routemq.toml, or pass its path") from None
    except OSError as e:
        raise ConfigError(path, f"cannot read the file: {e.strerror}", "check the path and its permissions") from None
    try:
        # O_NONBLOCK: a FIFO swapped in after the stat must not block the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC) if stat.S_ISREG(info.st_mode) else -1
    except OSError as e:
        raise ConfigError(path, f"cannot read the file: {e.strerror}", "check the path and its permissions") from None
    if fd < 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd >= 0:
            os.close(fd)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, device or socket)"
        raise ConfigError(path, f"the config path is {kind}", "pass the path of a routemq.toml file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(path, f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB: not a routemq.toml",
                          "pass the path of the routemq.toml file (a config is a few KiB)")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError(path, "the file is UTF-16 text", "save it as UTF-8")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]  # some Windows editors add it; it carries no meaning
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, f"the file is not UTF-8 text ({e.reason} at byte {e.start})",
                          "save it as UTF-8") from None


def parse(path: Path, text: str) -> dict[str, Any]:
    """The TOML document; a syntax error names its line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        found = re.search(r"at line (\d+)", message)
        raise ConfigError(path, f"invalid TOML: {message}",
                          "fix the syntax on that line (strings need quotes, one key = value per line, "
                          "sections as [name] or [[routes]])",
                          line=int(found.group(1)) if found else None) from None
    except RecursionError:
        raise ConfigError(path, "invalid TOML: arrays or tables nested too deeply",
                          "write a flat routemq.toml (`rmqtui init` writes an example)") from None


class Loader:
    """One load: the file's path, its locator and the environment, plus the checks that raise."""

    def __init__(self, path: Path, text: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.locator = Locator(text)
        self.env = env

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        """A :class:`ConfigError` at ``key`` (the caller raises it, so control flow stays visible)."""
        return ConfigError(self.path, problem, fix, line=self.locator.line_of(key), key=key)

    def load(self, doc: Mapping[str, Any]) -> Config:
        """The validated :class:`Config` of a parsed document."""
        self.check_keys(doc, _TOP_KEYS, "", "the file")
        broker = self.broker(doc)
        fleet = self.fleet(doc)
        broker, fleet = apply_env(self.path, broker, fleet, self.env)
        routes = self.routes(doc, fleet)
        config = Config(path=self.path, broker=broker, fleet=fleet, routes=routes, ops=self.ops(doc))
        self.between_routes(config)
        return config

    def ops(self, doc: Mapping[str, Any]):
        """``[metrics]`` and the autoscale keys, read by the services that use them (imported only here)."""
        from ..ops import parse_ops_settings

        metrics = doc.get("metrics", {})
        if not isinstance(metrics, dict):
            raise self.fail("metrics", f"metrics must be a [metrics] section, got {describe(metrics)}",
                            'write [metrics] with listen = "127.0.0.1:9464"')
        self.check_keys(metrics, ("listen",), "metrics", "[metrics]")
        try:
            return parse_ops_settings(doc)
        except ValueError as exc:
            text = str(exc)
            key = "metrics.listen" if text.startswith("[metrics]") else "routes"
            problem, _, fix = text.partition("; ")
            raise self.fail(key, problem, fix or "see the README's Metrics and Autoscaling sections") from None

    # -- generic ------------------------------------------------------------------------------

    def check_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str, label: str) -> None:
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
            raise self.fail(where, f"{where} must be a table, got {describe(value)}",
                            f"write it as a [{where}] section with one key = value per line")
        return value

    def section(self, cls: type, table: Mapping[str, Any], where: str, label: str) -> dict[str, Any]:
        """The keys of ``table`` checked against ``cls``'s declared settings (type, range, length)."""
        specs = settings_of(cls)
        self.check_keys(table, tuple(specs), where, label)
        values: dict[str, Any] = {}
        for key, (spec, default) in specs.items():
            if key not in table or dataclasses.is_dataclass(spec.kind):
                continue
            value = table[key]
            problem = check_type(key, spec, value, None if default is dataclasses.MISSING else default) or check_value(key, spec, value)
            if problem:
                raise self.fail(f"{where}.{key}", *problem)
            values[key] = float(value) if spec.kind is float else value
        return values

    # -- sections -----------------------------------------------------------------------------

    def broker(self, doc: Mapping[str, Any]) -> BrokerConfig:
        t = self.table(doc, "broker", "broker")
        values = self.section(BrokerConfig, t, "broker", "[broker]")
        if "tls" in t:
            values["tls"] = self.tls(self.table(t, "tls", "broker.tls"))
        return BrokerConfig(**values)

    def tls(self, t: Mapping[str, Any]) -> TLSConfig:
        values = self.section(TLSConfig, t, "broker.tls", "[broker.tls]")
        for name in ("ca", "cert", "key"):
            if name not in values:
                continue
            path = Path(values[name]).expanduser()
            if not path.is_absolute():
                path = self.path.parent / path
            if not path.is_file():
                raise self.fail(f"broker.tls.{name}", f"the TLS {name} file {values[name]!r} does not exist "
                                f"(looked at {path})",
                                "fix the path (relative paths start at the config's directory) or remove the key")
            values[name] = str(path)
        if ("cert" in values) != ("key" in values):
            missing = "cert" if "key" in values else "key"
            raise self.fail(f"broker.tls.{missing}", "a client certificate needs both cert and key",
                            f"add {missing} = \"...\" to [broker.tls], or remove the other one")
        return TLSConfig(**values)

    def fleet(self, doc: Mapping[str, Any]) -> FleetConfig:
        t = self.table(doc, "fleet", "fleet")
        v = self.section(FleetConfig, t, "fleet", "[fleet]")
        f = FleetConfig(**v)
        problem = check_group("fleet.group", f.group)
        if problem:
            raise self.fail("fleet.group", *problem)
        if f.handlers and not MODULE_RE.match(f.handlers):
            raise self.fail("fleet.handlers", f"handlers {f.handlers!r} is not a Python package name",
                            'write the package your handlers live in, e.g. handlers = "app_routes"')
        if not CLIENT_PREFIX_RE.match(f.client_prefix):
            raise self.fail("fleet.client_prefix", f"client_prefix {f.client_prefix[:60]!r} has characters "
                            "brokers may refuse in client ids",
                            "use only letters, digits, '_' and '-', or remove the key for rmqtui-<hostname>")
        if not CLIENT_PREFIX_RE.match(f.host_id):
            raise self.fail("fleet.host_id", f"host_id {f.host_id[:60]!r} has characters "
                            "brokers may refuse in client ids",
                            "use only letters, digits, '_' and '-', or remove the key for the host name")
        if f.hang_timeout <= f.heartbeat_interval:
            raise self.fail("fleet.hang_timeout", f"hang_timeout ({f.hang_timeout:g}s) must be longer than "
                            f"heartbeat_interval ({f.heartbeat_interval:g}s), or every worker looks hung",
                            "set hang_timeout to many heartbeats, e.g. hang_timeout = 30")
        problem = check_dead_letter_topic(f.dead_letter_topic)
        if problem:
            raise self.fail("fleet.dead_letter_topic", *problem)
        return dataclasses.replace(f, log_level=f.log_level.upper())

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
            raise self.fail("routes", f"routes must be [[routes]] sections, got {describe(raw)}",
                            "write each route as its own [[routes]] section (double brackets)")
        routes: list[RouteConfig] = []
        seen: dict[str, int] = {}
        for i, table in enumerate(raw):
            route = self.route(i, table, fleet)
            if route.name in seen:
                raise self.fail(f"routes[{i}].name", f"route name {route.name!r} is used twice "
                                f"(routes[{seen[route.name]}] and routes[{i}])", "give every route its own name")
            seen[route.name] = i
            routes.append(route)
        return tuple(routes)

    def route(self, i: int, t: Mapping[str, Any], fleet: FleetConfig) -> RouteConfig:
        w = f"routes[{i}]"
        name = t.get("name")
        label = f"[[routes]] #{i + 1}" + (f" ({name[:60]!r})" if isinstance(name, str) else "")
        specs = settings_of(RouteConfig)
        values = self.section(RouteConfig, t, w, label)
        for key in _REQUIRED_ROUTE_KEYS:
            if key not in t:
                raise self.fail(f"{w}.{key}", f"{label} has no {key}", f"add {key} = \"{specs[key][0].example}\" to it")
        r = RouteConfig(**values)
        if not ROUTE_NAME_RE.match(r.name):
            raise self.fail(f"{w}.name", f"route name {r.name[:60]!r} is not usable in client ids, topics and "
                            "file names", specs["name"][0].fix)
        problem = check_route_topic(r.name, r.topic)
        if problem:
            raise self.fail(f"{w}.topic", *problem)
        if r.workers > fleet.max_workers:
            raise self.fail(f"{w}.workers", f"route {r.name!r} asks for {r.workers} workers, more than "
                            f"fleet.max_workers ({fleet.max_workers})", spec_of(FleetConfig, "max_workers").fix)
        if not r.shared and r.workers > 1:
            raise self.fail(f"{w}.workers", f"route {r.name!r} is not shared but asks for {r.workers} "
                            "workers: every worker would receive every message",
                            "set shared = true to split messages between workers, or workers = 1")
        if r.group is not None:
            problem = check_group(f"{w}.group", r.group)
            if problem:
                raise self.fail(f"{w}.group", *problem)
        handler = check_handler(self.fail, self.path, f"{w}.handler", r.name, r.handler, fleet.handlers)
        return dataclasses.replace(r, handler=handler)

    # -- rules between routes -----------------------------------------------------------------

    def between_routes(self, config: Config) -> None:
        """Limits and conflicts that only show with every route known."""
        total = 0
        owners: dict[tuple[str, str], RouteConfig] = {}
        for i, r in enumerate(config.routes):
            w = f"routes[{i}]"
            total += r.workers
            if total > config.fleet.max_workers:
                raise self.fail(f"{w}.workers", f"the routes ask for {total} workers in all (up to {r.name!r}), "
                                f"more than fleet.max_workers ({config.fleet.max_workers})",
                                spec_of(FleetConfig, "max_workers").fix)
            subscription = config.subscription(r)
            # Mosquitto counts the $share/<group>/ levels too (measured with 2.0: a shared filter of
            # 200 levels is refused, a plain one is not), so the whole subscription must fit.
            too_big = check_topic_limits(f"the subscription {subscription[:40]!r}...", subscription,
                                         subscription.count("/") + 1)
            if too_big:
                raise self.fail(f"{w}.topic", f"route {r.name!r}: {too_big}",
                                "use a topic with fewer levels (a shared route's $share/<group>/ adds 2)")
            self.dead_letters(config, i, r)
            probe = f"rmqtui/hosts/{config.group_for(r)}/host/state"  # presence records of the fleets (hosts.py)
            if not config.broker.embedded and r.pattern.match(probe) is not None:  # records live on shared brokers
                raise self.fail(f"routes[{i}].topic", f"route {r.name!r} ({r.topic!r}) matches {probe!r}: rmqtui's "
                                "presence records (rmqtui/hosts/...) would reach its workers as work",
                                "narrow the topic so it cannot match rmqtui/hosts/...")
            if r.shared:
                same = owners.setdefault((config.group_for(r), r.pattern.filter), r)
                if same is not r:
                    raise self.fail(f"{w}.topic", f"routes {same.name!r} and {r.name!r} both subscribe to "
                                    f"{r.pattern.filter!r} in the share group {config.group_for(r)!r}: the "
                                    "broker would split the messages between them, each handling only some",
                                    f'give one of them its own group (e.g. group = "{r.name}"; every group '
                                    "gets every message), or merge them into one route")

    def dead_letters(self, config: Config, i: int, route: RouteConfig) -> None:
        """A route's dead-letter topic is publishable, and no route would receive it as work."""
        dead = config.dead_letter_topic(route)
        if not dead:
            return
        too_big = check_topic_limits("its dead-letter topic", dead, dead.count("/") + 1)
        if too_big:
            raise self.fail("fleet.dead_letter_topic", f"route {route.name!r}: {too_big}",
                            "use a shorter dead_letter_topic")
        for j, other in enumerate(config.routes):
            if other.pattern.match(dead) is not None:
                raise self.fail(f"routes[{j}].topic",
                                f"route {other.name!r} ({other.topic!r}) matches {dead!r}, the dead-letter topic "
                                f"of route {route.name!r}: its workers would receive failed messages as work, "
                                "and a failing one would loop",
                                f"narrow the topic so it cannot match {dead!r}, or set dead_letter_topic in "
                                '[fleet] to a topic no route matches (or "" to only log failed messages)')


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``routemq.toml``, apply environment overrides; raises :class:`ConfigError`.

    ``env`` defaults to ``os.environ`` (see :func:`~.env.apply_env` for the names).
    """
    path = Path(path).absolute()
    text = read_text(path)
    doc = parse(path, text)
    return Loader(path, text, os.environ if env is None else env).load(doc)
