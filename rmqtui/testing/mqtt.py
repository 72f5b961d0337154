"""Reach a fleet's broker from tests and benchmarks the way the fleet's own clients do.

A *target* is whatever a test has at hand: a running ``Fleet`` (its private socket, or the external
broker it uses), a ``FleetSnapshot`` or its ``BrokerSnapshot``, ready ``BrokerSettings``, or a plain TCP
port on 127.0.0.1 (a test's own Mosquitto).
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

from ..engine.broker_sys import address, make_client
from ..engine.protocol import BrokerSettings

Target = Any  # Fleet | FleetSnapshot | BrokerSnapshot | BrokerSettings | int


def settings(target: Target, *, protocol: str | None = None) -> BrokerSettings:
    """The :class:`BrokerSettings` that reach ``target``."""
    if isinstance(target, BrokerSettings):
        s = target
    elif isinstance(target, int):
        s = BrokerSettings(host="127.0.0.1", port=target)
    elif hasattr(target, "broker_settings"):  # a Fleet
        s = target.broker_settings()
    else:
        b = getattr(target, "broker", target)  # a FleetSnapshot, or its BrokerSnapshot
        s = BrokerSettings(host=b.host, port=b.port, protocol=b.protocol, unix_path=b.unix_path)
    if protocol is not None and protocol != s.protocol:
        from dataclasses import replace

        s = replace(s, protocol=protocol)
    return s


def of_config(config_path) -> BrokerSettings:
    """How the fleet of ``config_path`` (running in another process) is reached: its embedded broker's
    private socket, else the external broker the file names."""
    from ..engine import runtime
    from ..engine.config import load
    from ..engine.protocol import broker_settings

    b = load(config_path).broker
    return broker_settings(b, unix_path=str(runtime.broker_socket(config_path)) if b.embedded else None)


def new_client(target: Target, client_id: str = "", *, protocol: str | None = None, clean: bool = True,
               manual_ack: bool = False) -> mqtt.Client:
    """A paho client for ``target`` (transport, protocol, credentials), not connected yet."""
    return make_client(settings(target, protocol=protocol), client_id, clean=clean, manual_ack=manual_ack)


def connect(client: mqtt.Client, target: Target, **kwargs: Any) -> Any:
    """``client.connect`` to ``target``'s address (a socket path or host and port)."""
    return client.connect(*address(settings(target)), **kwargs)
