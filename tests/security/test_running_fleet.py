"""A running fleet belongs to the user who started it: its broker, its directories, its load target.

The second user is ``nobody`` (needs root and runuser; skipped with the reason otherwise).  Payload
attacks run against the real fleet: a 10 MB message and one full of terminal escape codes.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading

import psutil
import pytest

from rmqtui.engine.broker import _connect_packet, free_port
from rmqtui.engine.snapshot import WorkerState
from rmqtui.headless import snapshot_json
from rmqtui.testing.mqtt import connect, new_client
from tests.engine.conftest import project, publish, start_fleet, wait_for  # noqa: F401 - fixtures

from .test_broker_access import as_other_user

ROUTE = {"name": "work", "topic": "jobs/{id}", "handler": "handlers.rec:record", "workers": 2, "qos": 1}
RMQTUI = [sys.executable, "-m", "rmqtui.cli"]


def _subscribed(fleet, n: int = 2):
    ws = [w for w in fleet.snapshot().workers if w.state is WorkerState.SUBSCRIBED and w.pid]
    return len(ws) == n and ws


def _other_user_lists(path: str) -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root and runuser to act as a second user")
    r = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c",
                        "import os, sys\ntry:\n    print(os.listdir(sys.argv[1]))\n"
                        "except OSError as e:\n    print(type(e).__name__)", path],
                       capture_output=True, text=True, timeout=20, cwd="/")
    return r.stdout.strip()


def test_the_fleet_listens_only_on_its_private_socket(project, start_fleet):
    path = project.write([ROUTE])
    fleet = start_fleet(path)
    wait_for(lambda: _subscribed(fleet), what="two subscribed workers")
    b = fleet.snapshot().broker
    sock = b.unix_path
    assert sock and stat.S_ISSOCK(os.stat(sock).st_mode) and not b.tcp
    run_dir = os.path.dirname(sock)
    assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700, "the socket's directory is private"
    # nothing listens on the configured TCP port: there is no door to grab or knock on
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", b.port), timeout=1).close()
    out = as_other_user("unix", sock, _connect_packet(b"intruder").hex())
    assert out == "oserror PermissionError", f"another user reached the fleet's broker: {out}"
    assert _other_user_lists(run_dir) == "PermissionError", "another user listed the runtime directory"
    assert _other_user_lists(str(fleet._state_dir)) == "PermissionError", "another user listed the state directory"


def test_load_with_no_fleet_refuses_and_sends_nothing_anywhere(project):
    """The port in the file may belong to somebody else's broker: never publish there by accident."""
    from rmqtui.engine.broker import EmbeddedBroker

    port = free_port()
    stranger = EmbeddedBroker(project.root / "stranger", port=port)  # plays another user's broker
    stranger.start()
    got: list[bytes] = []
    spy = new_client(port, "spy")
    spy.on_message = lambda c, u, m: got.append(m.payload)
    ready = threading.Event()
    spy.on_subscribe = lambda *a: ready.set()
    connect(spy, port)
    spy.subscribe("#")
    spy.loop_start()
    try:
        wait_for(ready.is_set, what="the spy's subscription")
        project.write([ROUTE], broker={"port": port})
        r = subprocess.run(RMQTUI + ["load", "-n", "20"], cwd=project.root, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
        assert "no fleet is running" in r.stderr and "--host/--port" in r.stderr
        assert "Traceback" not in r.stderr
        publish(port, lambda i: "probe/end", 1)  # the spy sees this one: it was listening all along
        wait_for(lambda: got, what="the spy's own probe")
        assert got == [b'{"seq": 0}'], f"load published to a broker that is not the fleet's: {got[:3]}"
    finally:
        spy.loop_stop()
        spy.disconnect()
        stranger.stop()


def test_tcp_opt_in_requires_the_generated_login_and_keeps_its_port(project, start_fleet):
    port = free_port()
    fleet = start_fleet(project.write([ROUTE], broker={"port": port, "listen_tcp": True}))
    wait_for(lambda: _subscribed(fleet), what="two subscribed workers")
    b = fleet.snapshot().broker
    assert b.tcp and b.port == port and b.address == f"unix:broker.sock+tcp:{port}"
    out = as_other_user("tcp", f"127.0.0.1:{port}", _connect_packet(b"intruder").hex())
    assert out == "connack 5", f"anonymous TCP was not refused as not authorised: {out}"
    state = json.loads((fleet._state_file).read_text())
    assert state["tcp"] and state["username"] and state["password"], "the login is in the 0600 state file"
    assert stat.S_IMODE(os.stat(fleet._state_file).st_mode) == 0o600


def test_a_taken_tcp_port_is_an_error_not_a_silent_move(project):
    from rmqtui.engine.broker import BrokerError
    from rmqtui.engine.config import load
    from rmqtui.engine.supervisor import Fleet

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        fleet = Fleet(load(project.write([ROUTE], broker={"port": port, "listen_tcp": True})))
        with pytest.raises(BrokerError, match=f"port {port} .* is taken"):
            fleet.start()
        fleet.stop(timeout=5)
    finally:
        taken.close()


ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[1;1Hfake status: all good\x9b31m\r"

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
BIG_PUBLISH = """
import sys
from rmqtui.engine.protocol import BrokerSettings
from rmqtui.testing import publish
print(publish(BrokerSettings(host="", port=1, unix_path=sys.argv[1]), lambda i: "bad/0", 1,
              payload_of=lambda i: "x" * (10 << 20)))
"""

RAISER = """
def handle(msg):
    raise ValueError("bad payload: " + msg.payload.decode("utf-8", "replace"))
"""


def test_huge_and_hostile_payloads_stay_bounded_and_clean(project, start_fleet):
    project.handler("raiser", RAISER)
    route = {"name": "bad", "topic": "bad/{id}", "handler": "handlers.raiser:handle", "workers": 1, "qos": 1}
    fleet = start_fleet(project.write([route], broker={"max_packet_size": 16 << 20}, fleet={"handler_retries": 0}))
    wait_for(lambda: _subscribed(fleet, 1), what="the worker")
    dead: list[dict] = []
    sink = new_client(fleet, "sink")
    sink.on_message = lambda c, u, m: dead.append(json.loads(m.payload))
    ready = threading.Event()
    sink.on_subscribe = lambda *a: ready.set()
    connect(sink, fleet)
    sink.subscribe("rmqtui/dead/#", 1)
    sink.loop_start()
    me = psutil.Process()
    try:
        wait_for(ready.is_set, what="the dead-letter subscription")
        before = me.memory_info().rss  # this process is the supervisor; the big publish runs in another
        big = subprocess.run([sys.executable, "-c", BIG_PUBLISH, fleet.unix_path], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert big.returncode == 0 and big.stdout.strip() == "1", big.stderr
        assert publish(fleet, lambda i: f"bad/{i}", 1, start=1, payload_of=lambda i: ESCAPES) == 1
        wait_for(lambda: len(dead) == 2, timeout=30, what="both dead letters")
        # the dead letter goes over MQTT, the worker's log record over its pipe: either may arrive first
        wait_for(lambda: any("fake status" in r.message for r in fleet.logs_since(0)), timeout=30,
                 what="the hostile text in the logs, made harmless")
        grown = me.memory_info().rss - before
        print(f"\nsupervisor RSS growth after a 10 MB and an escape-code payload: {grown / 1e6:.1f} MB")
        snap = fleet.snapshot()
        line = snapshot_json(snap)
        records = fleet.logs_since(0)
    finally:
        sink.loop_stop()
        sink.disconnect()
    huge = next(d for d in dead if d.get("truncated_from"))
    assert huge["truncated_from"] == 10 << 20 and len(huge["payload"]) <= 64 * 1024, "the dead letter is capped"
    assert len(huge["error"]) <= 4200 and "characters cut" in huge["error"], "so is the error quoting the payload"
    assert grown < 24 << 20, f"the supervisor grew {grown >> 20} MB for one 10 MB message"
    assert len(line) < 64 * 1024, f"a JSON status line of {len(line)} bytes"
    for text in [line] + [r.message for r in records]:
        assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text, f"raw control codes: {text[:120]!r}"
    assert all(len(r.message) <= 4000 for r in records), "log records are capped"
