"""Live tests of one worker process against a real Mosquitto, without a supervisor."""

from __future__ import annotations

import json

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rmqtui.engine.protocol import EXIT_FAILED, EXIT_NETWORK, Drain

from .conftest import wait_for
from .worker_kit import Client, Mosquitto, broker, make_spec, subscribed, wait_beat, workers, write_handlers

__all__ = ["broker", "workers"]  # fixtures

PUBLISHER = '''
import asyncio

def handle(msg):
    info = msg.publish("out/" + msg.params["n"], msg.payload, qos=1)
    info.wait_for_publish(5)  # on paho's network thread this would wait for the packets it stops
    if not info.is_published():
        raise RuntimeError("the handler's publish was not acknowledged")
    msg.publish("out/json", {"n": msg.params["n"], "redelivered": msg.redelivered})

async def handle_async(msg):
    await asyncio.sleep(0)
    msg.publish("out/" + msg.params["n"], msg.payload, qos=1)
'''


@pytest.mark.parametrize("handler,thread", [("handlers.h:handle", True), ("handlers.h:handle", False),
                                            ("handlers.h:handle_async", False)])
def test_handler_publishes_from_sync_and_async_handlers(tmp_path, broker, workers, handler, thread):
    """A handler may wait for its own publish.  With ``handler_thread`` it runs off paho's network
    thread from the start; on the network thread (the default) the first wait moves it to a thread of
    its own and that one message runs again there (its first publish goes out twice, nothing hangs)."""
    write_handlers(tmp_path, PUBLISHER)
    w = workers(make_spec(tmp_path, broker.settings(), handler, handler_thread=thread))
    moved = handler.endswith(":handle") and not thread
    wait_for(lambda: subscribed(w), what="the worker to subscribe")
    out = Client(broker.port)
    out.subscribe("out/#")
    pub = Client(broker.port)
    for i in range(5):
        pub.publish(f"t/{i}", f"m{i}".encode())
    beat = wait_beat(w, lambda b: b.handled == 5, "5 handled messages")
    copies = 6 if moved else 5
    wait_for(lambda: len([m for m in out.received if m.topic != "out/json"]) == copies,
             what=f"{copies} handler publishes")
    payloads = sorted(m.payload for m in out.received if m.topic != "out/json")
    assert sorted(set(payloads)) == [b"m0", b"m1", b"m2", b"m3", b"m4"], "each handler publish arrives"
    assert len(payloads) == copies, "only the message that moved the handler published twice"
    assert beat.failed == 0 and beat.received == 5, "the handler's wait for its own publish returned"
    expected = 10 if handler.endswith(":handle") else 5
    beat = wait_beat(w, lambda b: b.published == expected + (1 if moved else 0), "publishes counted")
    if expected == 10:
        wait_for(lambda: len([m for m in out.received if m.topic == "out/json"]) == 5, what="the JSON publishes")
        bodies = [json.loads(m.payload) for m in out.received if m.topic == "out/json"]
        assert sorted(b["n"] for b in bodies) == ["0", "1", "2", "3", "4"], "a dict payload is published as JSON"
        assert sum(b["redelivered"] for b in bodies) == (1 if moved else 0), "the run again says it is one"
    moves = [r for r in w.logs if "runs on a thread of its own" in r.message]
    assert len(moves) == (1 if moved else 0), "the move is logged once, with the setting that avoids it"
    out.close()
    pub.close()


REPLIER = '''
def handle(msg):
    msg.reply(b"pong:" + msg.payload)
'''


def test_reply_uses_response_topic_and_correlation_data_v5(tmp_path, broker, workers):
    write_handlers(tmp_path, REPLIER)
    w = workers(make_spec(tmp_path, broker.settings("v5")))
    wait_for(lambda: subscribed(w), what="the worker to subscribe")
    requester = Client(broker.port, protocol="v5")
    requester.subscribe("resp/me")
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "resp/me"
    props.CorrelationData = b"corr-42"
    requester.publish("t/1", b"ping", properties=props)
    wait_for(lambda: requester.received, what="the reply")
    reply = requester.received[0]
    assert reply.payload == b"pong:ping", "the reply's payload"
    assert reply.properties.CorrelationData == b"corr-42", "the request's correlation data comes back"
    assert wait_beat(w, lambda b: b.published == 1, "the reply counted").failed == 0, "no failure"
    requester.close()


def test_a_replied_request_is_acknowledged_without_waiting_for_the_next_message(tmp_path, broker, workers):
    """A handler on paho's network thread that publishes at QoS 1: its request is acknowledged on the
    reply's PUBACK.  paho calls ``on_publish`` before it marks the publish done, so the release must not
    wait for that mark, or the last request before a quiet spell stays unacknowledged: a stop then waits
    out the drain timeout and the next process handles the request a second time."""
    write_handlers(tmp_path, "def handle(msg):\n    msg.publish('out/pong', b'pong:' + msg.payload, qos=1)\n")
    w = workers(make_spec(tmp_path, broker.settings()))
    wait_for(lambda: subscribed(w), what="the worker to subscribe")
    out = Client(broker.port)
    out.subscribe("out/#")
    pub = Client(broker.port)
    pub.publish("t/1", b"ping")
    wait_for(lambda: out.payloads() == [b"pong:ping"], what="the reply")
    wait_beat(w, lambda b: b.handled == 1, "the request handled")
    w.send(Drain(keep_session=True, timeout=3.0))
    assert w.wait_exit() == 0, "a clean stop"
    assert "did not return" not in w.log_text(), "the request's acknowledgement was still held at the stop"
    assert _left_in_session(tmp_path, broker, workers, w, pub) == 0, "the replied request came back"
    out.close()
    pub.close()


def _left_in_session(tmp_path, broker, workers, w, pub) -> int:
    """How many messages a fresh worker under ``w``'s (stopped) session receives before a new one."""
    again = workers(make_spec(tmp_path, broker.settings(), client_id=w.spec.client_id))
    wait_for(lambda: subscribed(again), what="the second worker to subscribe")
    pub.publish("t/last", b"x")
    beat = wait_beat(again, lambda b: b.handled >= 1, "the next message")
    return beat.received - 1


CONCURRENT = '''
import asyncio

async def handle(msg):
    await asyncio.sleep(0.3)
'''


def test_async_concurrency_keeps_several_in_flight(tmp_path, broker, workers):
    write_handlers(tmp_path, CONCURRENT)
    w = workers(make_spec(tmp_path, broker.settings(), concurrency=8))
    wait_for(lambda: subscribed(w), what="the worker to subscribe")
    pub = Client(broker.port)
    for i in range(8):
        pub.publish(f"t/{i}", b"x")
    wait_beat(w, lambda b: b.in_flight >= 2, "more than one message in flight")
    beat = wait_beat(w, lambda b: b.handled == 8 and b.in_flight == 0, "all 8 handled")
    assert beat.failed == 0, "no failures"
    # acknowledged: a fresh worker under the same session gets nothing back
    w.send(Drain(keep_session=True))
    assert w.wait_exit() == 0, "a clean stop"
    assert _left_in_session(tmp_path, broker, workers, w, pub) == 0, "nothing was left unacknowledged"
    pub.close()


FAILING = '''
def handle(msg):
    if msg.payload == b"bad":
        raise ValueError("bad payload")
'''


@pytest.mark.parametrize("protocol", ["v3.1.1", "v5"])
def test_empty_dead_letter_topic_logs_and_acknowledges(tmp_path, broker, workers, protocol):
    write_handlers(tmp_path, FAILING)
    w = workers(make_spec(tmp_path, broker.settings(protocol), dead_letter_topic="", handler_retries=1))
    wait_for(lambda: subscribed(w), what="the worker to subscribe")
    spy = Client(broker.port)
    spy.subscribe("#")
    pub = Client(broker.port)
    pub.publish("t/1", b"bad")
    pub.publish("t/2", b"good")
    beat = wait_beat(w, lambda b: b.handled == 1 and b.failed == 1, "one failure and the next message handled")
    assert beat.dead_lettered == 0, "nothing counted as dead-lettered"
    assert beat.received == 2, "the failed message was not redelivered"
    # the spy is another client: the broker's copies to it are not ordered with the worker's heartbeats
    wait_for(lambda: len(spy.received) >= 2, what="the two inputs at the spy")
    assert sorted(m.topic for m in spy.received) == ["t/1", "t/2"], "nothing but the two inputs was published"
    assert "dropped (dead_letter_topic is empty)" in w.log_text(), "the log says so"
    assert w.proc.is_alive() and w.state() == "subscribed", "the worker still serves"
    spy.close()
    pub.close()


def test_dead_letters_are_acknowledged_and_skipped(tmp_path, broker, workers):
    write_handlers(tmp_path, FAILING)
    w = workers(make_spec(tmp_path, broker.settings(), pattern="rmqtui/#", handler_retries=0))
    wait_for(lambda: subscribed(w), what="the worker to subscribe")
    pub = Client(broker.port)
    pub.publish("rmqtui/x", b"bad")
    beat = wait_beat(w, lambda b: b.skipped == 1, "the worker's own dead letter skipped")
    assert (beat.failed, beat.dead_lettered, beat.received) == (1, 1, 1), "one failure, one dead letter, no loop"
    pub.close()


SABOTEUR = '''
def handle(msg):
    # an exception inside a paho callback ends paho's network thread
    msg._outbox.client.on_message = lambda *a: 1 / 0
'''


def test_dead_network_thread_exits_with_the_reason(tmp_path, broker, workers):
    write_handlers(tmp_path, SABOTEUR)
    w = workers(make_spec(tmp_path, broker.settings()))
    wait_for(lambda: subscribed(w), what="the worker to subscribe")
    pub = Client(broker.port)
    pub.publish("t/1", b"x")
    wait_beat(w, lambda b: b.handled == 1, "the sabotage to run")
    pub.publish("t/2", b"x")
    assert w.wait_exit() == EXIT_NETWORK, "a deaf worker exits so the slot restarts"
    assert "network thread" in w.statuses[-1].reason, "its status says why"
    pub.close()


def test_too_long_log_file_name_fails_with_the_reason(tmp_path, broker, workers):
    write_handlers(tmp_path, FAILING)
    w = workers(make_spec(tmp_path, broker.settings(), log_file=str(tmp_path / ("x" * 300))))
    assert w.wait_exit() == EXIT_FAILED, "cannot start: failed, not a crash"
    assert w.statuses[-1].state == "failed", "a failed status"
    assert "File name too long" in w.statuses[-1].reason, "the first line of the real error"


def test_invalid_filter_fails_with_the_reason(tmp_path, broker, workers):
    write_handlers(tmp_path, FAILING)
    spec = make_spec(tmp_path, broker.settings())
    w = workers(spec.__class__(**{**{f: getattr(spec, f) for f in spec.__slots__},
                                 "subscribe_filter": "$share/g/dev-+/x"}))
    assert w.wait_exit() == EXIT_FAILED, "failed, not restarted forever"
    assert "wildcard" in w.statuses[-1].reason and "dev-+" in w.statuses[-1].reason, "the reason names the level"


def test_unix_socket_transport(tmp_path, workers):
    b = Mosquitto(tmp_path, unix=True)
    try:
        write_handlers(tmp_path, FAILING)
        w = workers(make_spec(tmp_path, b.settings(unix_path=b.unix_path, port=1)))
        wait_for(lambda: subscribed(w), what="the worker to subscribe over the unix socket")
        pub = Client(b.port, unix_path=b.unix_path)
        pub.publish("t/1", b"good")
        assert wait_beat(w, lambda x: x.handled == 1, "a message handled").failed == 0, "handled over the socket"
        pub.close()
    finally:
        b.close()


def test_keep_session_stop_leaves_the_group_membership(tmp_path, broker, workers):
    """A fleet stop keeps the session subscribed: what arrives meanwhile waits for the next process."""
    write_handlers(tmp_path, FAILING)
    w = workers(make_spec(tmp_path, broker.settings()))
    wait_for(lambda: subscribed(w), what="the worker to subscribe")
    w.send(Drain(keep_session=True))
    assert w.wait_exit() == 0, "a clean stop"
    pub = Client(broker.port)
    for i in range(5):
        pub.publish(f"t/{i}", b"good")
    again = workers(make_spec(tmp_path, broker.settings(), client_id=w.spec.client_id))
    beat = wait_beat(again, lambda b: b.handled == 5, "the 5 queued messages handled by the next process")
    assert beat.failed == 0, "no failures"
    pub.close()
