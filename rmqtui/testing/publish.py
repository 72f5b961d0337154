"""A numbered QoS 1 publisher: ``{"seq": i}`` payloads, acknowledged by the broker, with a send window."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Callable

from .mqtt import Target, connect, new_client
from .wait import wait_for


def publish(broker: Target, topic_of: Callable[[int], str], count: int, *, qos: int = 1, start: int = 0,
            rate: float = 0.0, window: int = 500,
            payload_of: Callable[[int], bytes | str] | None = None) -> int:
    """Publish ``count`` numbered messages from ``start`` to ``broker`` (see :mod:`.mqtt`); return how many the
    broker acknowledged."""
    client = new_client(broker, f"test-pub-{os.getpid()}-{time.time_ns()}")
    slots = threading.Semaphore(window)
    acked = [0]

    def on_publish(c, u, mid, rc, props):
        acked[0] += 1
        slots.release()

    client.on_publish = on_publish
    connect(client, broker)
    client.loop_start()
    try:
        t0 = time.monotonic()
        for i in range(start, start + count):
            if rate:
                delay = t0 + (i - start) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if not slots.acquire(timeout=10):
                raise TimeoutError("the broker stopped acknowledging publishes")
            body = payload_of(i) if payload_of else json.dumps({"seq": i})
            client.publish(topic_of(i), body, qos=qos)
        wait_for(lambda: acked[0] >= count, timeout=30, what="publish acknowledgements")
        return acked[0]
    finally:
        client.disconnect()
        client.loop_stop()
