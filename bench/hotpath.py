"""Micro-benchmark of the worker's per-message path, outside any broker.

Runs a worker's whole per-message path with a paho ``MQTTMessage`` and a no-op handler:
the callback paho's network thread calls (``Worker._on_message_inline`` and
``Dispatcher.handle``, rmqtui/engine/worker/dispatch.py; the default, where handlers run on
the network thread), and the bare subscriber's callback body for comparison; prints
microseconds per message for each and the difference (what rmqtui adds per message).

    .venv/bin/python bench/hotpath.py [--n 200000] [--qos 1]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing
import statistics
import sys
import time


class _NullChannel:
    def send(self, obj) -> None:
        pass


class _Client:
    """Stands in for paho's client: ack() is a no-op on both sides."""

    def ack(self, mid, qos) -> None:
        pass


def measure(n: int, qos: int, reps: int = 5) -> dict:
    import paho.mqtt.client as mqtt

    from rmqtui.engine.protocol import BrokerSettings, WorkerSpec
    from rmqtui.engine.worker.main import Channel, Worker

    spec = WorkerSpec(worker_id="r/0", route="r", slot=0, client_id="bench-hot", pattern="sensors/{device}/data",
                      subscribe_filter="$share/g/sensors/+/data", handler="x:y", qos=qos, root=".",
                      broker=BrokerSettings(host="127.0.0.1", port=1, protocol="v5"))
    worker = Worker(spec, Channel(_NullChannel()), multiprocessing.RawValue(ctypes.c_int, 0), lambda m: None)
    client = _Client()
    worker.dispatcher.ack = client.ack
    full_path = worker.conn.client.on_message  # what paho's network thread calls
    msg = mqtt.MQTTMessage(mid=7, topic=b"sensors/dev-42/data")
    msg.payload = b"x" * 100
    msg.qos = qos
    count = [0]

    def bare(c, userdata, m):  # what bench/bare_sub.py does around its probe, minus the probe
        count[0] += 1
        if m.qos:
            c.ack(m.mid, m.qos)

    def run(fn) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(client, None, msg)
        return (time.perf_counter() - t0) / n * 1e6

    worker_us, bare_us = [], []
    for _ in range(reps):
        bare_us.append(run(bare))
        worker_us.append(run(full_path))
    w, b = statistics.median(worker_us), statistics.median(bare_us)
    return {"n": n, "qos": qos, "worker_us": w, "bare_us": b, "added_us": w - b}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--qos", type=int, default=1)
    a = ap.parse_args()
    print(json.dumps(measure(a.n, a.qos)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
