"""Short-lived MQTT probe clients for ``rmqtui doctor``: connect, subscribe, collect, publish.

Each probe is a real client with the fleet's credentials and TLS; waits poll a
condition with a deadline, so a healthy broker answers in milliseconds and a
broken one costs at most the timeout.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Callable

import paho.mqtt.client as mqtt

from .engine.broker_sys import address, make_client
from .engine.protocol import BrokerSettings


class ProbeError(Exception):
    """A probe could not connect or subscribe; the message says what the broker answered."""


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Probe:
    """One connected client that counts what it receives per payload."""

    def __init__(self, access: BrokerSettings, client_id: str, *, clean: bool = True, timeout: float = 5.0) -> None:
        self.access = access
        self.client_id = client_id
        self.timeout = timeout
        self.received: Counter[bytes] = Counter()
        self._lock = threading.Lock()
        self._connack: object = None
        self._subacks: dict[int, list] = {}
        self.client = make_client(access, client_id, clean=clean)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.acked = 0
        self._clean = clean

    # paho callbacks run on the probe's network thread
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connack = reason_code

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.received[msg.payload] += 1

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._subacks[mid] = list(reason_codes)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.acked += 1

    def connect(self) -> "Probe":
        """Connect and wait for the CONNACK; raises :class:`ProbeError` with the broker's answer."""
        self.client.connect_timeout = self.timeout
        props = None
        if self.access.protocol == "v5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if self._clean else 600
        try:
            if props is not None:
                self.client.connect(*address(self.access), keepalive=30, clean_start=self._clean,
                                    properties=props)
            else:
                self.client.connect(*address(self.access), keepalive=30)
        except OSError as exc:  # refused, unreachable, TLS handshake (ssl.SSLError is an OSError)
            raise ProbeError(f"{type(exc).__name__}: {exc}") from None
        self.client.loop_start()
        if not wait_until(lambda: self._connack is not None, self.timeout):
            self.close()
            raise ProbeError(f"no CONNACK within {self.timeout:g}s (is this an MQTT listener?)")
        if self._connack.is_failure:
            self.close()
            raise ProbeError(f"the broker refused the connection: {self._connack}")
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK; raises :class:`ProbeError` when refused."""
        result, mid = self.client.subscribe(topic, qos)
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise ProbeError(f"could not send SUBSCRIBE {topic}: {mqtt.error_string(result)}")
        if not wait_until(lambda: mid in self._subacks, self.timeout):
            raise ProbeError(f"no SUBACK for {topic} within {self.timeout:g}s")
        codes = self._subacks[mid]
        if any(code.is_failure for code in codes):
            raise ProbeError(f"the broker refused the subscription {topic}: {codes[0]}")

    def publish(self, topic: str, payloads: list[bytes], qos: int = 1) -> int:
        """Publish each payload and wait for the acknowledgements; return how many were acknowledged."""
        start = self.acked
        for p in payloads:
            self.client.publish(topic, p, qos=qos)
        wait_until(lambda: self.acked - start >= len(payloads), self.timeout)
        return self.acked - start

    def count(self) -> int:
        """Messages received so far."""
        with self._lock:
            return sum(self.received.values())

    def close(self) -> None:
        """Disconnect (keeping the session when it was opened with ``clean=False``) and stop the thread."""
        self.client.disconnect()
        self.client.loop_stop()
