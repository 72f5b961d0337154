"""The test RouteMQ project (tests/routemq/project) run by rmqtui with the real routemq package.

Two routers; a group with middleware; a parameterised shared route with worker_count 3; a
non-shared route; a handler that replies with client.publish().  Real Mosquitto, real workers.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from rmqtui.cli import main
from rmqtui.engine.config import load
from rmqtui.engine.supervisor import Fleet
from rmqtui.message import Message
from rmqtui.routemq.commands import load_config_with_dotenv
from rmqtui.testing.mqtt import connect, new_client
from tests.engine.conftest import publish

from .conftest import records, set_port, wait_for

TELEMETRY = "devices-device_id-telemetry"
STATUS = "devices-device_id-status"
COMMANDS = "commands-device_id-command"


@pytest.fixture
def fleet(project: Path):
    """The project's generated routemq.toml (with its .env, as the CLI loads it), running."""
    assert main(["init", "--from-routemq", str(project)]) == 0, "init --from-routemq failed"
    set_port(project / "routemq.toml", heartbeat_interval=0.2, drain_timeout=5.0, handler_retries=0)
    config = load_config_with_dotenv(project / "routemq.toml", load, environ={})
    assert config.fleet.group == "routemq_test", "MQTT_GROUP_NAME from .env must set the share group"
    fleet = Fleet(config)
    fleet.start()
    try:
        wait_for(lambda: [w.state.value for w in fleet.snapshot().workers] == ["subscribed"] * 5, timeout=60,
                 what="all 5 RouteMQ workers to subscribe")
        yield fleet
    finally:
        fleet.stop(timeout=10)
        me = psutil.Process()
        wait_for(lambda: not [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE],
                 timeout=10, what="every worker to exit")


def workers(fleet: Fleet, route: str) -> list:
    return [w for w in fleet.snapshot().workers if w.route == route]


def test_handlers_see_routemq_arguments_through_the_middleware(fleet, project):
    port = fleet  # the fleet's own broker (its private socket)
    assert publish(port, lambda i: f"devices/d{i % 3}/telemetry", 30) == 30
    assert publish(port, lambda i: "devices/d9/status", 1, start=100) == 1
    raw = new_client(fleet)
    connect(raw, fleet)
    raw.loop_start()
    raw.publish("devices/d9/status", b"not json", qos=1).wait_for_publish(10)
    raw.disconnect()
    raw.loop_stop()
    wait_for(lambda: len(records(project)) >= 32, what="32 handled messages")

    seen = records(project)
    telemetry = [r for r in seen if r["route"] == "telemetry"]
    assert sorted(r["payload"]["seq"] for r in telemetry) == list(range(30)), "every telemetry message, once"
    for r in telemetry:
        assert r["device_id"] == f"d{r['payload']['seq'] % 3}", f"{{device_id}} injected from the topic: {r}"
        assert r["payload"]["stamps"] == ["devices-group"], f"the group's middleware ran first: {r}"
        assert r["client"] == "WorkerClient" and r["greeting"] == "hello from .env", f"client/.env: {r}"
        assert r["database"] == [True, 9], f"each worker set up RouteMQ's database models from .env: {r}"
    status = sorted((r for r in seen if r["route"] == "status"), key=lambda r: str(r["payload"]))
    assert [r["payload"] for r in status] == [{"bytes": "not json"}, {"seq": 100, "stamps": ["devices-group"]}], \
        f"JSON payloads are decoded, others arrive as bytes, as in RouteMQ: {status}"

    pool = workers(fleet, TELEMETRY)
    by_pid = Counter(r["pid"] for r in telemetry)
    assert sorted(by_pid) == sorted(w.pid for w in pool), f"all 3 workers of the shared route handled: {by_pid}"
    wait_for(lambda: sum(w.handled for w in workers(fleet, TELEMETRY)) == 30, what="heartbeats with the counts")
    assert {w.pid: w.handled for w in workers(fleet, TELEMETRY)} == dict(by_pid), "counts show per worker"
    wait_for(lambda: [w.handled for w in workers(fleet, STATUS)] == [2],
             what="the non-shared route's one worker to count both status messages")


def test_a_sigkilled_worker_loses_nothing_at_qos1(fleet, project):
    port = fleet  # the fleet's own broker (its private socket)
    total = 600
    sender = threading.Thread(target=publish, args=(port, lambda i: f"devices/d{i % 5}/telemetry", total),
                              kwargs={"rate": 300.0}, daemon=True)
    sender.start()
    wait_for(lambda: len(records(project)) >= 100, what="traffic flowing")
    victim = workers(fleet, TELEMETRY)[1]
    assert fleet.kill_worker(victim.id).ok, "kill refused"
    sender.join(60)
    assert not sender.is_alive(), "publishing did not finish"
    wait_for(lambda: {r["payload"]["seq"] for r in records(project)} >= set(range(total)), timeout=60,
             what="every acknowledged message handled after the kill")
    wait_for(lambda: next(w for w in workers(fleet, TELEMETRY) if w.id == victim.id).restarts >= 1,
             what="the killed slot restarted")
    dups = sum(c - 1 for c in Counter(r["payload"]["seq"] for r in records(project)).values())
    print(f"SIGKILL of a RouteMQ worker: {total} published, 0 lost, {dups} redelivered")


def test_a_handler_replies_with_client_publish(fleet, project):
    port = fleet  # the fleet's own broker (its private socket)
    replies: list[dict] = []
    listener = new_client(fleet)
    listener.on_message = lambda c, u, m: replies.append(json.loads(m.payload))
    subscribed = threading.Event()
    listener.on_subscribe = lambda *a: subscribed.set()
    connect(listener, fleet)
    listener.subscribe("replies/#", qos=1)
    listener.loop_start()
    try:
        assert subscribed.wait(10), "no SUBACK for replies/#"
        assert publish(port, lambda i: "commands/d7/reboot", 1) == 1
        wait_for(lambda: any(r["route"] == "command" for r in records(project)), what="the command handled")
        if hasattr(Message, "publish"):
            wait_for(lambda: replies, what="the reply")
            assert replies[0]["command"] == "reboot" and replies[0]["ok"] is True, f"reply {replies}"
        else:
            # until rmqtui's handler publishing is merged, the reply fails loudly, never silently
            wait_for(lambda: workers(fleet, COMMANDS)[0].dead_lettered == 1, what="the message dead-lettered")
            logs = " ".join(r.message for r in fleet.logs_since(0))
            assert "needs rmqtui with handler publishing" in logs, "the missing publish() must be explained"
    finally:
        listener.disconnect()
        listener.loop_stop()


def test_scaled_counts_save_back_to_the_generated_config(fleet, project):
    assert fleet.add_worker(TELEMETRY).ok, "adding a worker to the shared RouteMQ route was refused"
    wait_for(lambda: [w.state.value for w in workers(fleet, TELEMETRY)] == ["subscribed"] * 4,
             what="the 4th RouteMQ worker subscribed")
    assert not fleet.add_worker(STATUS).ok, "a non-shared RouteMQ route must refuse a second worker"
    assert fleet.save_config().ok, "saving the counts was refused"
    saved = {r.name: (r.workers, r.handler) for r in load(project / "routemq.toml").routes}
    assert saved[TELEMETRY] == (4, "rmqtui_routemq:devices_device_id_telemetry"), f"saved {saved}"


def test_v5_trace_context_reaches_routemq(project):
    """A W3C traceparent user property on an MQTT v5 request shows in RouteMQ's observability context."""
    if "_properties" not in getattr(Message, "__slots__", ()):
        pytest.skip("this rmqtui's Message does not carry MQTT v5 properties yet")
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    assert main(["init", "--from-routemq", str(project)]) == 0
    set_port(project / "routemq.toml", heartbeat_interval=0.2, drain_timeout=5.0)
    config_path = project / "routemq.toml"
    config_path.write_text(config_path.read_text().replace('protocol = "v3.1.1"', 'protocol = "v5"'))
    fleet = Fleet(load(config_path))
    fleet.start()
    try:
        wait_for(lambda: [w.state.value for w in fleet.snapshot().workers] == ["subscribed"] * 5, timeout=60,
                 what="all 5 RouteMQ workers subscribed over MQTT v5")
        client = new_client(fleet, protocol="v5")
        connect(client, fleet)
        client.loop_start()
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        client.publish("commands/d1/ping", b"{}", qos=1, properties=props).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        wait_for(lambda: [r for r in records(project) if r["route"] == "command"], what="the command handled")
        got = [r["trace_id"] for r in records(project) if r["route"] == "command"]
        assert got[0] == "0af7651916cd43dd8448eb211c80319c", f"trace ids seen by the handler: {got}"
    finally:
        fleet.stop(timeout=10)
