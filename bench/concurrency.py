"""Throughput of one worker whose ``async def`` handler awaits 5 ms, at concurrency 1 and 16.

A private Mosquitto; the worker's session is filled with N QoS 1 messages
while it is away, then one worker process (rmqtui.engine.worker.run, as the
supervisor starts it) drains it.  The rate is taken from the worker's own
heartbeats, from the first beat with work done to the beat that shows all N
handled, so start-up and connection time are not in it.

    .venv/bin/python bench/concurrency.py [--n 1000] [--sleep-ms 5] [--levels 1,16]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from rmqtui.engine.broker import EmbeddedBroker, free_port
from rmqtui.engine.protocol import BrokerSettings, Drain, Heartbeat, Status, WorkerSpec

# unique per run; each level has its own group, since the sessions of earlier levels stay subscribed
TOPIC = f"conc{os.getpid()}"

HANDLER = '''
import asyncio

async def handle(msg):
    await asyncio.sleep({sleep})
'''


def _spec(root: Path, port: int, concurrency: int, client_id: str) -> WorkerSpec:
    topic = f"{TOPIC}-{concurrency}"
    return WorkerSpec(worker_id="bench/0", route="bench", slot=0, client_id=client_id, pattern=f"{topic}/{{n}}",
                      subscribe_filter=f"$share/{topic}/{topic}/+", handler="bench_handlers:handle", qos=1,
                      root=str(root), broker=BrokerSettings(host="127.0.0.1", port=port),
                      heartbeat_interval=0.05, concurrency=concurrency)


def _run_worker(spec: WorkerSpec, until, timeout: float) -> list[tuple[float, Heartbeat]]:
    """Run one worker until ``until(beats, subscribed)``; returns (arrival time, heartbeat) pairs."""
    from rmqtui.engine import worker

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=worker.run, args=(spec, child, ctx.RawValue("i", 0)), daemon=True)
    proc.start()
    child.close()
    beats: list[tuple[float, Heartbeat]] = []
    subscribed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if parent.poll(0.05):
                msg = parent.recv()
                if isinstance(msg, Heartbeat):
                    beats.append((time.perf_counter(), msg))
                elif isinstance(msg, Status) and msg.state == "failed":
                    raise RuntimeError(f"the worker failed: {msg.reason}")
                elif isinstance(msg, Status) and msg.state == "subscribed":
                    subscribed = True
            if until(beats, subscribed):
                break
        else:
            raise TimeoutError(f"the worker did not finish in time: {beats[-1][1] if beats else None}")
        parent.send(Drain(keep_session=True))
        proc.join(10)
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    return beats


def _fill(port: int, n: int, topic: str) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-concurrency-pub")
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(f"{topic}/{i}", b"x" * 64, qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def measure(root: Path, port: int, n: int, concurrency: int) -> float:
    """Messages per second one worker handles at ``concurrency``."""
    client_id = f"bench-concurrency-{concurrency}"
    spec = _spec(root, port, concurrency, client_id)
    # first run: create the session and its subscription, then stop keeping it
    _run_worker(spec, lambda beats, subscribed: subscribed, 30)
    _fill(port, n, f"{TOPIC}-{concurrency}")
    beats = _run_worker(spec, lambda b, _: bool(b) and b[-1][1].handled >= n, 60 + n * 0.02)
    first = next((t, hb) for t, hb in beats if hb.handled > 0)
    last = beats[-1]
    return (last[1].handled - first[1].handled) / (last[0] - first[0])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--sleep-ms", type=float, default=5.0)
    ap.add_argument("--levels", default="1,16")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rmqtui-bench-") as tmp:
        root = Path(tmp)
        (root / "bench_handlers.py").write_text(HANDLER.format(sleep=a.sleep_ms / 1000))
        broker = EmbeddedBroker(root, port=free_port())
        broker.start()
        try:
            rates = {int(c): measure(root, broker.port, a.n, int(c)) for c in a.levels.split(",")}
        finally:
            broker.stop()
    base = rates[min(rates)]
    print(json.dumps({"n": a.n, "sleep_ms": a.sleep_ms, "msg_per_s": {k: round(v, 1) for k, v in rates.items()},
                      "speedup": {k: round(v / base, 2) for k, v in rates.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
