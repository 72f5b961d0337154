"""Live helpers for worker tests: a private Mosquitto, one worker process without a supervisor, MQTT clients."""

from __future__ import annotations

import multiprocessing
import os
import pwd
import shutil
import socket
import subprocess
import textwrap
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rmqtui.engine.broker import free_port
from rmqtui.engine.protocol import BrokerSettings, Heartbeat, LogLine, Status, WorkerSpec

from .conftest import wait_for


class Mosquitto:
    """A Mosquitto on a free loopback port (and a unix socket with ``unix=True``), killed by pid on close."""

    def __init__(self, root: Path, *, unix: bool = False) -> None:
        self.port = free_port()
        self.unix_path = str(root / "mqtt.sock") if unix else None
        conf = root / "mosquitto.conf"
        # our own user: as root, Mosquitto would switch to "mosquitto", which cannot use our directory
        lines = [f"user {pwd.getpwuid(os.getuid()).pw_name}",
                 f"listener {self.port} 127.0.0.1", "allow_anonymous true", "max_queued_messages 0",
                 f"log_dest file {root / 'mosquitto.log'}"]
        if self.unix_path:
            lines += [f"listener 0 {self.unix_path}", "allow_anonymous true"]
        conf.write_text("\n".join(["per_listener_settings false"] + lines) + "\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ready, timeout=10, what="mosquitto to listen")

    def _ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return self.unix_path is None or os.path.exists(self.unix_path)

    def settings(self, protocol: str = "v3.1.1", **kw) -> BrokerSettings:
        return BrokerSettings(**{"host": "127.0.0.1", "port": self.port, "protocol": protocol, **kw})

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path)
    yield b
    b.close()


def write_handlers(root: Path, source: str) -> None:
    """``handlers/h.py`` under ``root`` with ``source``."""
    pkg = root / "handlers"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "h.py").write_text(textwrap.dedent(source))


def make_spec(root: Path, settings: BrokerSettings, handler: str = "handlers.h:handle", *,
              pattern: str = "t/{n}", group: str = "g", slot: int = 0, **kw) -> WorkerSpec:
    client_id = kw.pop("client_id", f"wk-{uuid.uuid4().hex[:8]}-{slot}")
    return WorkerSpec(worker_id=f"r/{slot}", route="r", slot=slot, client_id=client_id, pattern=pattern,
                      subscribe_filter=f"$share/{group}/{pattern.replace('{n}', '+')}" if group else
                      pattern.replace("{n}", "+"),
                      handler=handler, qos=1, root=str(root), broker=settings, heartbeat_interval=0.1, **kw)


class WorkerProcess:
    """One worker process run like the supervisor runs it, with everything it sends collected."""

    def __init__(self, spec: WorkerSpec) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.spec = spec
        self.conn, child = ctx.Pipe(duplex=True)
        self.current_mid = ctx.RawValue("i", 0)
        from rmqtui.engine import worker
        self.proc = ctx.Process(target=worker.run, args=(spec, child, self.current_mid), daemon=True)
        self.proc.start()
        child.close()
        self.beats: list[Heartbeat] = []
        self.statuses: list[Status] = []
        self.logs: list[LogLine] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                return
            {Heartbeat: self.beats, Status: self.statuses, LogLine: self.logs}.get(type(msg), []).append(msg)

    @property
    def last(self) -> Heartbeat | None:
        return self.beats[-1] if self.beats else None

    def state(self) -> str:
        return self.statuses[-1].state if self.statuses else ""

    def log_text(self) -> str:
        return "\n".join(line.message for line in self.logs)

    def send(self, msg) -> None:
        self.conn.send(msg)

    def wait_exit(self, timeout: float = 20.0) -> int:
        self.proc.join(timeout)
        assert self.proc.exitcode is not None, f"worker {self.spec.client_id} did not exit in {timeout}s"
        self._reader.join(5)
        return self.proc.exitcode

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


@pytest.fixture
def workers():
    """Start worker processes; every one is killed at teardown."""
    started: list[WorkerProcess] = []

    def _start(spec: WorkerSpec) -> WorkerProcess:
        w = WorkerProcess(spec)
        started.append(w)
        return w

    yield _start
    for w in started:
        w.kill()


class Client:
    """A test MQTT client that records what it receives (payloads and v5 properties)."""

    def __init__(self, port: int, *, protocol: str = "v3.1.1", client_id: str = "", clean: bool = True,
                 unix_path: str | None = None) -> None:
        self.v5 = protocol == "v5"
        kwargs = {} if self.v5 else {"clean_session": clean}
        if unix_path:
            kwargs["transport"] = "unix"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311, **kwargs)
        self.received: list[mqtt.MQTTMessage] = []
        self.suback = threading.Event()
        self.session_present: bool | None = None
        self.client.on_message = lambda c, u, m: self.received.append(m)
        self.client.on_subscribe = lambda *a: self.suback.set()
        self.client.on_connect = self._on_connect
        connect_kw = {}
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if clean else 3600
            connect_kw = {"clean_start": clean, "properties": props}
        if unix_path:
            self.client.connect(unix_path, 1883, **connect_kw)  # paho checks the port even here
        else:
            self.client.connect("127.0.0.1", port, **connect_kw)
        self.client.loop_start()
        wait_for(self.client.is_connected, timeout=10, what="the test client to connect")

    def _on_connect(self, c, u, flags, rc, props) -> None:
        self.session_present = flags.session_present

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self.suback.clear()
        self.client.subscribe(topic_filter, qos)
        wait_for(self.suback.is_set, timeout=10, what=f"SUBACK for {topic_filter}")

    def publish(self, topic: str, payload, qos: int = 1, properties=None) -> None:
        self.client.publish(topic, payload, qos=qos, properties=properties).wait_for_publish(10)

    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_beat(w: WorkerProcess, predicate, what: str, timeout: float = 20.0) -> Heartbeat:
    """Wait for a heartbeat satisfying ``predicate``."""
    return wait_for(lambda: w.last if w.last and predicate(w.last) else None, timeout=timeout, what=what)


def subscribed(w: WorkerProcess) -> bool:
    return any(s.state == "subscribed" for s in w.statuses)
