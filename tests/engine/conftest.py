"""Fixtures for live engine tests: real Mosquitto on a free loopback port, real worker processes."""

from __future__ import annotations

import collections
import json
import os
import textwrap
import time
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt
import psutil
import pytest

from rmqtui.engine.broker import free_port
from rmqtui.engine.config import load
from rmqtui.engine.supervisor import Fleet

#: A handler that records every sequence number it completes, one file per process.
RECORDING_HANDLER = '''
import json, os
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
OUT.mkdir(exist_ok=True)
_file = None

def record(msg):
    global _file
    if _file is None:
        _file = open(OUT / f"{os.getpid()}.txt", "a", buffering=1)
    seq = json.loads(msg.payload)["seq"]
    _file.write(f"{seq} {int(msg.redelivered)}\\n")
'''


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05, what: str = ""):
    """Poll ``predicate`` until it returns something truthy; fail the test past ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class Project:
    """A throw-away project directory: routemq.toml plus handler modules."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "handlers").mkdir()
        (root / "handlers" / "__init__.py").write_text("")
        self.handler("rec", RECORDING_HANDLER)

    def handler(self, module: str, source: str) -> None:
        (self.root / "handlers" / f"{module}.py").write_text(textwrap.dedent(source))

    def write(self, routes: list[dict], *, fleet: dict | None = None, broker: dict | None = None) -> Path:
        b = {"embedded": True, "host": "127.0.0.1", "port": free_port(), "protocol": "v3.1.1"}
        b.update(broker or {})
        f = {"group": "g", "handlers": "handlers", "heartbeat_interval": 0.2, "drain_timeout": 5.0}
        f.update(fleet or {})
        lines = ["[broker]"] + [f"{k} = {json.dumps(v)}" for k, v in b.items()]
        lines += ["", "[fleet]"] + [f"{k} = {json.dumps(v)}" for k, v in f.items()]
        for r in routes:
            lines += ["", "[[routes]]"] + [f"{k} = {json.dumps(v)}" for k, v in r.items()]
        path = self.root / "routemq.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def records(self) -> collections.Counter:
        """How often each sequence number was completed, over all processes."""
        seen: collections.Counter = collections.Counter()
        for f in (self.root / "handlers" / "out").glob("*.txt"):
            for line in f.read_text().splitlines():
                seen[int(line.split()[0])] += 1
        return seen

    def per_process(self) -> dict[int, int]:
        out = {}
        for f in (self.root / "handlers" / "out").glob("*.txt"):
            out[int(f.stem)] = len(f.read_text().splitlines())
        return out


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def start_fleet():
    """Start a Fleet on a config path; every fleet is stopped at teardown, and no process may outlive it."""
    fleets: list[Fleet] = []

    def _start(path: Path, **kwargs) -> Fleet:
        fleet = Fleet(load(path), **kwargs)
        fleet.start()
        fleets.append(fleet)
        return fleet

    yield _start
    for fleet in fleets:
        fleet.stop(timeout=10)
    me = psutil.Process()
    wait_for(lambda: not [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE],
             timeout=10, what="every child process to exit")


def publish(port: int, topic_of: Callable[[int], str], count: int, *, qos: int = 1, start: int = 0,
            rate: float = 0.0, window: int = 500) -> int:
    """Publish numbered JSON messages ``{"seq": i}``; return how many the broker acknowledged."""
    import threading

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{os.getpid()}-{time.time_ns()}")
    slots = threading.Semaphore(window)
    acked = [0]

    def on_publish(c, u, mid, rc, props):
        acked[0] += 1
        slots.release()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
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
            client.publish(topic_of(i), json.dumps({"seq": i}), qos=qos)
        wait_for(lambda: acked[0] >= count, timeout=30, what="publish acknowledgements")
        return acked[0]
    finally:
        client.disconnect()
        client.loop_stop()


def live_workers(fleet: Fleet, route: str | None = None) -> list:
    snap = fleet.snapshot()
    return [w for w in snap.workers if w.pid and (route is None or w.route == route)]
