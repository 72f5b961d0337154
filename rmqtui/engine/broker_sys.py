"""The broker's own figures, read from its ``$SYS`` topics.

Mosquitto publishes ``$SYS/broker/...`` every ``sys_interval`` seconds and
sends the latest values to a new subscriber at once.  :class:`BrokerSysReader`
keeps one small MQTT client subscribed to the few topics rmqtui uses (the
message store, retained messages, client counts) and remembers the latest
value of each with the time it arrived; the metrics endpoint, the autoscaler
and ``rmqtui doctor`` read them from here.  A broker that publishes no
``$SYS`` simply leaves every figure ``None``.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from .protocol import BrokerSettings, broker_settings  # noqa: F401 (broker_settings re-exported)

#: ``$SYS`` topic -> the :class:`BrokerStats` field it fills.
SYS_TOPICS = {
    "$SYS/broker/store/messages/count": "store_messages",
    "$SYS/broker/messages/stored": "store_messages",  # older Mosquitto name of the same figure
    "$SYS/broker/retained messages/count": "retained_messages",
    "$SYS/broker/clients/connected": "clients_connected",
    "$SYS/broker/clients/total": "clients_total",
    "$SYS/broker/subscriptions/count": "subscriptions",
    "$SYS/broker/version": "version",
}


@dataclass(frozen=True, slots=True)
class BrokerStats:
    """The latest ``$SYS`` figures; a figure the broker did not publish is None."""

    time: float | None = None  # unix time of the newest value
    store_messages: int | None = None  # messages held in the store (queued, in flight, retained)
    retained_messages: int | None = None
    clients_connected: int | None = None
    clients_total: int | None = None  # connected plus disconnected persistent sessions
    subscriptions: int | None = None
    version: str | None = None


def address(b: BrokerSettings) -> tuple[str, int]:
    """``(host, port)`` for paho's connect: the socket path for a unix-socket broker (paho checks the
    port even then, where it means nothing)."""
    return (b.unix_path, 1) if b.unix_path else (b.host, b.port)


def describe(b: BrokerSettings) -> str:
    """Where ``b`` points, for messages: the socket path, else ``host:port``."""
    if b.unix_path:
        return f"the socket {b.unix_path}"
    return f"[{b.host}]:{b.port}" if ":" in b.host else f"{b.host}:{b.port}"


def make_client(b: BrokerSettings, client_id: str, *, clean: bool = True, manual_ack: bool = False) -> mqtt.Client:
    """A paho client with the settings' transport, protocol, credentials and TLS, not connected yet."""
    v5 = b.protocol == "v5"
    kwargs: dict = {} if v5 else {"clean_session": clean}
    if b.unix_path:
        kwargs["transport"] = "unix"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, manual_ack=manual_ack, **kwargs)
    if b.username:
        client.username_pw_set(b.username, b.password or None)
    if b.tls_ca or b.tls_cert:
        client.tls_set(ca_certs=b.tls_ca, certfile=b.tls_cert, keyfile=b.tls_key,
                       cert_reqs=ssl.CERT_NONE if b.tls_insecure else ssl.CERT_REQUIRED)
        if b.tls_insecure:
            client.tls_insecure_set(True)
    return client


class BrokerSysReader:
    """One background MQTT client that follows the broker's ``$SYS`` figures.

    paho's network thread reconnects by itself, so a broker restart only leaves
    a gap; :meth:`stats` never blocks.
    """

    def __init__(self, access: BrokerSettings, client_id: str | None = None) -> None:
        self.access = access
        self.client_id = client_id or f"rmqtui-sys-{os.getpid()}-{time.time_ns() % 1_000_000}"
        self._values: dict[str, object] = {}
        self._time: float | None = None
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self.connected = threading.Event()

    def start(self) -> None:
        """Connect in the background (returns at once; figures appear as the broker sends them)."""
        client = make_client(self.access, self.client_id)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *a: self.connected.clear()
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 10)
        client.connect_async(*address(self.access), keepalive=30)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        """Disconnect and end the network thread."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def stats(self) -> BrokerStats:
        """The latest figures (all None until the broker has sent some)."""
        with self._lock:
            return BrokerStats(time=self._time, **self._values)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        client.subscribe([(topic, 0) for topic in SYS_TOPICS])
        self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        field_name = SYS_TOPICS.get(msg.topic)
        if field_name is None:
            return
        text = msg.payload.decode("utf-8", "replace").strip()
        if field_name == "version":
            value: object = text[:80]
        else:
            try:
                value = int(float(text))
            except ValueError:
                return  # not a number: keep the last good value
        with self._lock:
            self._values[field_name] = value
            self._time = time.time()
