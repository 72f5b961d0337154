"""What ``routemq.toml`` holds: frozen dataclasses whose fields declare each setting once.

Every field of :class:`BrokerConfig`, :class:`FleetConfig`, :class:`TLSConfig` and
:class:`RouteConfig` carries a :class:`Setting` (type, allowed range or values,
the fix for a bad value) in its metadata.  The loader reads the keys a section
accepts, checks types and ranges and words its errors from these declarations
only, so adding a setting is one line here (plus its line in the template).
"""

from __future__ import annotations

import dataclasses
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..topics import TopicPattern, shared_filter

from ..api import LOG_LEVELS  # noqa: E402 - the one copy
PROTOCOLS = ("v5", "v3.1.1")

# Limits that bite later, long after `check` said ok, if they are not checked up front.
MAX_TOPIC_BYTES = 65535      # MQTT: a UTF-8 topic, filter or client id is at most 65,535 bytes
MAX_TOPIC_LEVELS = 200       # Mosquitto 2.0 refuses deeper subscriptions (measured: 202 levels in all)
MAX_ROUTE_NAME = 100         # a route name becomes part of log file names (255-byte limit) and client ids
MAX_CLIENT_PREFIX = 128      # client ids are <prefix>-<route>-<slot>; long ids are refused by some brokers
MAX_HOST_ID = 64            # replaces the host name in client ids (rmqtui-<host_id>-<route>-<slot>)
MAX_NAME = 200               # share groups, package names, user names, environment variable names
MAX_CONFIG_BYTES = 1 << 20   # a routemq.toml larger than 1 MiB is not a config file


@dataclass(frozen=True, slots=True)
class Setting:
    """How one key is read from the file: its type, what values are allowed, how to fix a bad one.

    ``lo``/``hi`` bound numbers (inclusive; floats must also be finite), ``choices``
    lists the only values allowed, ``max_len`` bounds strings (characters) and
    ``nonempty`` refuses ``""``.  ``fix`` is the sentence shown after ``fix:``.
    ``file=False`` marks a field that never comes from the file (a secret).
    """

    kind: type
    fix: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Any, ...] = ()
    max_len: int | None = None
    nonempty: bool = False
    example: Any = None
    unit: str = ""
    file: bool = True


def setting(default: Any = dataclasses.MISSING, kind: type | None = None, *, repr: bool = True,
            **spec: Any) -> Any:
    """A dataclass field declaring a :class:`Setting`; ``kind`` defaults to the default's type."""
    if kind is None:
        kind = type(default)
    meta = {"setting": Setting(kind=kind, **spec)}
    return dataclasses.field(default=default, metadata=meta, repr=repr)


def settings_of(cls: type) -> dict[str, tuple[Setting, Any]]:
    """``{key: (setting, default)}`` for the keys the file may hold in ``cls``'s section."""
    out: dict[str, tuple[Setting, Any]] = {}
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("setting")
        if spec is not None and spec.file:
            out[f.name] = (spec, f.default)
    return out


def spec_of(cls: type, name: str) -> Setting:
    """The :class:`Setting` declared for field ``name`` of ``cls``."""
    return cls.__dataclass_fields__[name].metadata["setting"]


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Optional TLS towards an external broker (``[broker.tls]``)."""

    ca: str | None = setting(None, str, max_len=4096, example="certs/ca.pem",
                             fix="fix the path (relative paths start at the config's directory) or remove the key")
    cert: str | None = setting(None, str, max_len=4096, example="certs/client.pem",
                               fix="fix the path (relative paths start at the config's directory) or remove "
                                   "the key")
    key: str | None = setting(None, str, max_len=4096, example="certs/client.key",
                              fix="fix the path (relative paths start at the config's directory) or remove the key")
    insecure: bool = setting(False, fix="write insecure = true or insecure = false (no quotes)")


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where the fleet's broker is, and how to talk to it (``[broker]``)."""

    embedded: bool = setting(True, fix="write embedded = true or embedded = false (no quotes)")
    host: str = setting("127.0.0.1", nonempty=True, max_len=253,
                        fix='set host = "127.0.0.1" (or the address of your broker)')
    port: int = setting(1883, lo=1, hi=65535, fix="use a TCP port between 1 and 65535, e.g. port = 1883")
    protocol: str = setting("v3.1.1", choices=PROTOCOLS, example="v5",
                            fix='write protocol = "v5" or protocol = "v3.1.1"')
    username: str = setting("", max_len=MAX_TOPIC_BYTES, example="worker",
                            fix='write the broker user name, e.g. username = "worker", or "" for none')
    password_env: str = setting("MQTT_PASSWORD", max_len=MAX_NAME,
                                fix='name the environment variable holding the password, e.g. '
                                    'password_env = "MQTT_PASSWORD"')
    # Resolved from the environment, never from the file.
    password: str = setting("", file=False, fix="", repr=False)
    keepalive: int = setting(30, lo=0, hi=65535, unit="s",
                             fix="use seconds between 0 and 65535, e.g. keepalive = 30")
    tls: TLSConfig | None = setting(None, TLSConfig, fix="write it as a [broker.tls] section")
    mosquitto: str = setting("mosquitto", nonempty=True, max_len=4096,
                             fix='set mosquitto = "mosquitto" or the full path of the binary')
    listen_tcp: bool = setting(False, fix="write listen_tcp = true (a loopback TCP listener that needs the fleet's "
                                          "generated password) or false (the private unix socket only)")
    max_packet_size: int = setting(1 << 20, lo=1024, hi=268_435_455, unit="bytes",
                                   fix="use bytes between 1024 and 268435455, e.g. max_packet_size = 1048576")


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """Fleet-wide settings (``[fleet]``)."""

    group: str = setting("workers", max_len=MAX_NAME, fix='use a plain name such as group = "workers"')
    handlers: str = setting("app_routes", max_len=MAX_NAME,
                            fix='write the package your handlers live in, e.g. handlers = "app_routes"')
    client_prefix: str = setting("", max_len=MAX_CLIENT_PREFIX, example="rmqtui-host1",
                                 fix="use only letters, digits, '_' and '-' (at most "
                                     f"{MAX_CLIENT_PREFIX}), or remove the key for rmqtui-<hostname>")
    host_id: str = setting("", max_len=MAX_HOST_ID, example="host1",
                           fix="use only letters, digits, '_' and '-' (at most "
                               f"{MAX_HOST_ID}), or remove the key for the host name")
    log_level: str = setting("INFO", choices=LOG_LEVELS,
                             fix=f"use one of {', '.join(LOG_LEVELS)}, e.g. log_level = \"INFO\"")
    session_expiry: int = setting(7 * 24 * 3600, lo=60, hi=4_294_967_294, unit="s",
                                  fix="use seconds a worker's session outlives its connection (MQTT v5), "
                                      "e.g. session_expiry = 604800 (7 days)")
    adopt_after: float = setting(0.0, lo=0.0, hi=30 * 24 * 3600.0, unit="s",
                                 fix="use 0 (adopt by hand with rmqtui ctl adopt) or seconds a host stays dead "
                                     "before this fleet adopts it, e.g. adopt_after = 300")
    heartbeat_interval: float = setting(1.0, lo=0.05, hi=60.0, unit="s",
                                        fix="use about a second, e.g. heartbeat_interval = 1.0")
    hang_timeout: float = setting(30.0, lo=0.5, hi=86400.0, unit="s",
                                  fix="set hang_timeout to many heartbeats, e.g. hang_timeout = 30")
    drain_timeout: float = setting(10.0, lo=0.0, hi=3600.0, unit="s", fix="use seconds, e.g. drain_timeout = 10")
    handler_retries: int = setting(2, lo=0, hi=100, fix="use 0 to never retry, e.g. handler_retries = 2")
    dead_letter_topic: str = setting("rmqtui/dead/{route}", max_len=MAX_TOPIC_BYTES,
                                     fix='use a plain topic, optionally with {route}, e.g. '
                                         '"rmqtui/dead/{route}", or "" to only log failed messages')
    poison_crashes: int = setting(3, lo=1, hi=1000,
                                  fix="set how many worker crashes on one message make it poison, "
                                      "e.g. poison_crashes = 3")
    max_workers: int = setting(256, lo=1, hi=10000,
                               fix="lower the routes' workers, or raise max_workers in [fleet] if this machine "
                                   "has the memory and cores (each worker is a process of about 20 MB)")


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """One ``[[routes]]`` entry."""

    name: str = setting(max_len=MAX_ROUTE_NAME, kind=str, nonempty=True, example="sensor-data",
                        fix=f"use letters, digits, '-', '_' and '.', starting with a letter or digit, "
                            f"at most {MAX_ROUTE_NAME} characters")
    topic: str = setting(kind=str, max_len=MAX_TOPIC_BYTES, example="sensors/{device_id}/data",
                         fix='write a topic such as "sensors/{device_id}/data" (one {name} per level, '
                             '{rest...} only last)')
    handler: str = setting(kind=str, max_len=1000, example="app_routes.sensors:process_data",
                           fix='write e.g. handler = "app_routes.sensors:process_data"')
    shared: bool = setting(True, fix="write shared = true or shared = false (no quotes)")
    workers: int = setting(1, lo=1, hi=10000,
                           fix="use workers = 1 or more (stop a route by removing it), "
                               "at most fleet.max_workers")
    qos: int = setting(1, choices=(0, 1, 2),
                       fix="use qos = 0 (at most once), 1 (at least once) or 2 (exactly once)")
    group: str | None = setting(None, str, max_len=MAX_NAME, example="workers",
                                fix='use a plain name such as group = "workers"')
    concurrency: int = setting(1, lo=1, hi=1000,
                               fix="use how many messages one worker may handle at once (async handlers), "
                                   "e.g. concurrency = 1")
    handler_thread: bool = setting(False, fix="write handler_thread = true (handlers that block longer than the "
                                              "keepalive or wait for their own publishes) or false (no quotes)")
    autoscale: str = setting("off", choices=("off", "suggest", "on"), example="suggest",
                             fix='write autoscale = "off", "suggest" (recommend only) or "on"')
    min: int | None = setting(None, int, lo=0, hi=10000, fix="use the fewest workers autoscale may keep, e.g. min = 1")
    max: int | None = setting(None, int, lo=0, hi=10000, fix="use the most workers autoscale may start, e.g. max = 8")

    @property
    def pattern(self) -> TopicPattern:
        """The parsed topic pattern (validated by :func:`~rmqtui.engine.config.load`)."""
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
    #: ``[metrics]`` and the routes' autoscale keys, as :class:`rmqtui.engine.ops.OpsSettings`
    ops: Any = None

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

    def dead_letter_topic(self, route: RouteConfig) -> str:
        """Where ``route``'s failed messages go; ``""`` means they are only logged."""
        return self.fleet.dead_letter_topic.replace("{route}", route.name)


def host_id(config: Config) -> str:
    """This fleet's host id: ``fleet.host_id`` (or ``RMQTUI_HOST_ID``), else the host name made client-id safe."""
    if config.fleet.host_id:
        return config.fleet.host_id
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()).strip("-") or "host"
    return host[:MAX_HOST_ID]


def client_prefix(config: Config) -> str:
    """The fleet's client-id prefix: ``fleet.client_prefix`` or ``rmqtui-<host id>``.

    The host id (by default the host name) is part of the default so that fleets
    on several hosts sharing one clustered broker never collide on client ids.
    """
    if config.fleet.client_prefix:
        return config.fleet.client_prefix
    return f"rmqtui-{host_id(config)}"
