"""``rmqtui load``: bounded test traffic on the routes of a config.

Publishes ``count`` messages at no more than ``rate`` per second, round robin
over the routes, with varying topic parameters.  At QoS 1 and 2 at most
``window`` publishes are unacknowledged at any time: paho queues without limit
and silently drops messages once more than 65,535 are outstanding.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import threading
import time
from dataclasses import dataclass


from .engine.broker_sys import address, describe, make_client
from .engine.protocol import BrokerSettings
from .engine.topics import TopicPattern


class BrokerLost(ConnectionError):
    """The broker closed the connection (or stopped answering) in the middle of a load run."""


#: Seconds between MQTT pings: a broker that went away silently is noticed within 1.5 times this.
KEEPALIVE = 2


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a load run did."""

    sent: int
    acknowledged: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def concrete_topic(pattern: TopicPattern, i: int) -> str:
    """A topic matching ``pattern`` with parameters that vary with ``i``."""
    parts = []
    params = iter(pattern.params)
    for level in pattern.filter.split("/"):
        if level == "+":
            name = next(params, "x")
            parts.append(f"{name.replace('_', '-')}-{i % 16}")
        elif level == "#":
            parts.append(f"zone-{i % 4}/rack-{i % 3}")
        else:
            parts.append(level)
    return "/".join(parts)


def payload_for(i: int, size: int = 100) -> bytes:
    """A JSON reading padded to about ``size`` bytes."""
    body = {"seq": i, "value": round(20 + 5 * random.random(), 3), "ts": time.time()}
    raw = json.dumps(body)
    pad = max(0, size - len(raw) - 10)
    if pad:
        body["pad"] = "x" * pad
        raw = json.dumps(body)
    return raw.encode()


def publish_load(access: BrokerSettings, patterns: list[TopicPattern], *, count: int = 1000, rate: float = 200.0,
                 qos: int = 1, window: int = 1000, timeout: float = 600.0, progress=None) -> LoadResult:
    """Publish ``count`` messages to topics of ``patterns`` at most ``rate``/s; bounded in time by ``timeout``.

    Raises :class:`BrokerLost` as soon as the connection drops (a broker that died,
    or one silent past the keepalive), and ``ConnectionError`` when it cannot connect.
    """
    if not patterns:
        raise ValueError("no route to publish to")
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a finite positive number of messages per second, not {rate!r}")
    # transport, credentials and TLS exactly as the workers connect
    client = make_client(access, f"rmqtui-load-{random.randrange(1 << 30)}")
    where = describe(access)
    outstanding = threading.Semaphore(window)
    acked = [0]
    connected = threading.Event()
    lost = threading.Event()
    why: list[str] = []

    def on_connect(c, u, flags, rc, props):
        if not rc.is_failure:
            connected.set()

    def on_disconnect(c, u, flags, rc, props):
        if connected.is_set() and not lost.is_set():
            why.append(str(rc))
            lost.set()

    def on_publish(c, u, mid, rc, props):
        acked[0] += 1
        if qos:
            outstanding.release()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.on_disconnect = on_disconnect
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(min(window, 65535))
    client.connect(*address(access), keepalive=KEEPALIVE)
    client.loop_start()
    deadline = time.monotonic() + timeout
    sent = 0

    def check_connection() -> None:
        if lost.is_set():
            raise BrokerLost(f"lost the broker at {where} ({why[0] if why else 'connection closed'}) "
                             f"after {sent} of {count} messages, {acked[0]} acknowledged")

    try:
        if not connected.wait(10):
            raise ConnectionError(f"could not connect to the broker at {where}")
        start = time.monotonic()
        cycle = itertools.cycle(patterns)
        interval = 1.0 / rate
        for i in range(count):
            check_connection()
            if time.monotonic() > deadline:
                break
            if interval:
                due = start + i * interval
                delay = due - time.monotonic()
                if delay > 0 and lost.wait(delay):
                    check_connection()
            if qos:
                while not outstanding.acquire(timeout=0.5):
                    check_connection()
                    if time.monotonic() > deadline:
                        break
            # parameters vary per route, not in lockstep with the round robin over routes
            client.publish(concrete_topic(next(cycle), i // len(patterns)), payload_for(i), qos=qos)
            sent += 1
            if progress and sent % 1000 == 0:
                progress(sent)
        settle = min(deadline, time.monotonic() + 30.0)
        while qos and acked[0] < sent and time.monotonic() < settle:
            check_connection()
            lost.wait(0.01)
        return LoadResult(sent, acked[0], time.monotonic() - start)
    finally:
        client.disconnect()
        client.loop_stop()
