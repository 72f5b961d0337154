"""The embedded broker belongs to the user who started it: tested as a second, unprivileged user."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from rmqtui.engine.broker import BrokerLimits, EmbeddedBroker, _connect_packet, free_port, password_hash

OTHER_USER = "nobody"

#: Run as the other user with the system Python and only the standard library: what a stranger has.
PROBE = r'''
import socket, sys
kind, target = sys.argv[1], sys.argv[2]
pkt = bytes.fromhex(sys.argv[3])
try:
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(target)
    else:
        host, port = target.rsplit(":", 1); s = socket.create_connection((host, int(port)), timeout=2)
    s.sendall(pkt); reply = s.recv(4)
    print("connack", reply[3] if len(reply) >= 4 else "none")
except OSError as exc:
    print("oserror", type(exc).__name__)
'''


def as_other_user(*args: str) -> str:
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to act as a second user")
    r = subprocess.run(["runuser", "-u", OTHER_USER, "--", "/usr/bin/python3", "-c", PROBE, *args],
                       capture_output=True, text=True, timeout=20, cwd="/")
    assert r.returncode == 0, f"probe failed: {r.stderr}"
    return r.stdout.strip()


@pytest.fixture
def private_broker(tmp_path):
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    broker = EmbeddedBroker(tmp_path, port=free_port(), unix_socket=run / "mqtt.sock", authenticate_tcp=True)
    broker.start()
    yield broker
    broker.stop()


def test_other_user_cannot_reach_the_private_socket(private_broker):
    assert private_broker.ping(), "the owner must reach its own broker through the socket"
    out = as_other_user("unix", str(private_broker.unix_socket), _connect_packet(b"intruder").hex())
    assert out == "oserror PermissionError", f"another user reached the broker's socket: {out}"


def test_tcp_listener_refuses_anonymous_and_wrong_passwords(private_broker):
    target = f"127.0.0.1:{private_broker.port}"
    anon = as_other_user("tcp", target, _connect_packet(b"intruder").hex())
    guess = as_other_user("tcp", target, _connect_packet(b"intruder", "rmqtui-fleet", "guess").hex())
    assert anon == "connack 5", f"anonymous CONNECT was not refused as not authorised: {anon}"
    assert guess == "connack 5", f"a wrong password was not refused: {guess}"
    own = subprocess.run([sys.executable, "-c", PROBE, "tcp", target,
                          _connect_packet(b"owner", private_broker.username, private_broker.password).hex()],
                         capture_output=True, text=True, timeout=20)
    assert own.stdout.strip() == "connack 0", f"the fleet's own credentials were refused: {own.stdout}"


def test_broker_files_are_private(private_broker):
    for name in ("mosquitto.conf", "passwd", "acl"):
        mode = (private_broker.dir / name).stat().st_mode & 0o777
        assert mode == 0o600, f"{name} is {oct(mode)}"
    assert private_broker.password not in (private_broker.dir / "passwd").read_text(), "password stored in clear"


def test_password_hash_matches_mosquitto_passwd_format():
    salt = base64.b64decode("8t85ENdXJMG2LOp0")  # from a file mosquitto_passwd wrote
    assert password_hash("s3cret", salt=salt) == (
        "$7$101$8t85ENdXJMG2LOp0$mFyztJZWb0iA7JOkc+Thp3POZvsI3nPxkCFkL0Of9jdHcZmxhEoFDFXN/hIiegTvgtfyxqqq8pMPljf30WefJg==")


def test_quick_restart_keeps_the_configured_port(tmp_path):
    port = free_port()
    for round_ in range(3):
        broker = EmbeddedBroker(tmp_path, port=port)
        broker.start()
        try:
            assert broker.port == port and broker.moved_from is None, f"round {round_}: moved to {broker.port}"
            # a client connection that the broker closes first leaves the port's sockets in TIME_WAIT
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(_connect_packet(b"tw-%d" % round_))
                assert s.recv(4)[:1] == b"\x20", "no CONNACK"
                broker.stop()
                s.recv(1)
        finally:
            broker.stop()


def test_oversized_packets_are_refused_by_the_broker(tmp_path):
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    broker = EmbeddedBroker(tmp_path, unix_socket=run / "mqtt.sock", listen_tcp=False,
                            limits=BrokerLimits(max_packet_size=64 * 1024))
    broker.start()
    got: list[int] = []
    ready = threading.Event()
    try:
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sub", transport="unix")
        sub.on_connect = lambda c, u, f, rc, p=None: (c.subscribe("big/#", qos=1), None)
        sub.on_subscribe = lambda *a: ready.set()
        sub.on_message = lambda c, u, m: got.append(len(m.payload))
        sub.connect(str(broker.unix_socket))
        sub.loop_start()
        assert ready.wait(5), "subscription not acknowledged"
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub", transport="unix")
        pub.connect(str(broker.unix_socket))
        pub.loop_start()
        pub.publish("big/1", b"x" * (1 << 20), qos=1)
        pub.publish("big/2", b"y" * 100, qos=0)
        # the broker drops the publisher at the oversized packet; a second client proves the broker lives on
        pub2 = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub2", transport="unix")
        pub2.connect(str(broker.unix_socket))
        pub2.loop_start()
        pub2.publish("big/3", b"z" * 100, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and 100 not in got:
            time.sleep(0.05)
        pub2.loop_stop()
        pub.loop_stop()
        sub.loop_stop()
        assert 100 in got, f"the small message after the refused one did not arrive: {got}"
        assert (1 << 20) not in got, "a 1 MiB message passed a 64 KiB packet limit"
    finally:
        broker.stop()
