"""``routemq.toml`` as frozen dataclasses: loading, validation, env overrides, saving.

:func:`load` reads the file once and checks everything a worker would trip on
later (types, ranges, MQTT's limits, topic patterns, handlers), so a mistake is
reported at start-up with the file, line, key and a fix.  Handlers are checked
statically (the file exists, the function is defined): the supervisor never
imports user code, so a broken handler can only fail its worker.

The package: ``model`` declares each setting once (type, default, range, fix),
``loader`` reads and checks the file, ``locate`` finds a key's line, ``env``
applies environment overrides, ``handlers`` checks handlers statically and
``save`` writes worker counts back with comments kept.
"""

from .errors import ConfigError
from .loader import load
from .model import (
    LOG_LEVELS,
    MAX_TOPIC_BYTES,
    MAX_TOPIC_LEVELS,
    PROTOCOLS,
    BrokerConfig,
    Config,
    FleetConfig,
    RouteConfig,
    Setting,
    TLSConfig,
    client_prefix,
    host_id,
    settings_of,
)
from .save import atomic_write, save_worker_counts

__all__ = [
    "LOG_LEVELS", "MAX_TOPIC_BYTES", "MAX_TOPIC_LEVELS", "PROTOCOLS", "BrokerConfig", "Config", "ConfigError",
    "FleetConfig", "RouteConfig", "Setting", "TLSConfig", "atomic_write", "client_prefix", "host_id", "load",
    "save_worker_counts", "settings_of",
]
