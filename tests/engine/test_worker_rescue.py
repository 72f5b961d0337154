"""The ``release_only`` worker: hand a dead slot's queued messages on to the group, then end its session."""

from __future__ import annotations

import pytest

from .conftest import wait_for
from .worker_kit import Client, broker, make_spec, workers, write_handlers

__all__ = ["broker", "workers"]  # fixtures


@pytest.mark.parametrize("protocol", ["v3.1.1", "v5"])
def test_rescue_hands_the_backlog_on_and_ends_the_session(tmp_path, broker, workers, protocol):
    write_handlers(tmp_path, "def handle(msg):\n    raise AssertionError('a rescue never calls the handler')\n")
    slot_id = f"slot-{protocol}"
    # the dead slot: a persistent session in the group, holding everything published while it is away
    ghost = Client(broker.port, protocol=protocol, client_id=slot_id, clean=False)
    ghost.subscribe("$share/g/t/+")
    ghost.subscribe("rmqtui/dead/+")  # as if the route's filter also matched dead letters
    ghost.close()
    pub = Client(broker.port)
    for i in range(30):
        pub.publish(f"t/{i}", str(i).encode())
    pub.publish("rmqtui/dead/r", b"a dead letter is not work")
    live = Client(broker.port, protocol=protocol)
    live.subscribe("$share/g/t/+")
    w = workers(make_spec(tmp_path, broker.settings(protocol), client_id=slot_id, release_only=True))
    assert w.wait_exit() == 0, f"the rescue finished: {w.log_text()}"
    wait_for(lambda: len(live.received) >= 30, what="the 30 queued messages at the live member")
    assert sorted(int(p) for p in live.payloads()) == list(range(30)), "every queued message handed on once"
    assert all(m.qos == 1 for m in live.received), "at the same QoS"
    assert w.last is not None and w.last.handed_on == 30, "the count is in the last heartbeat"
    assert "handed 30 queued messages on" in w.log_text(), "and in the log"
    assert "skipped 1 that were not work" in w.log_text(), "the dead letter was not republished"
    # the session is gone: the slot no longer takes a share of the group's traffic
    probe = Client(broker.port, protocol=protocol, client_id=slot_id, clean=False)
    wait_for(lambda: probe.session_present is not None, what="CONNACK")
    assert probe.session_present is False, "the rescue ended the slot's session"
    probe.close()
    pub.close()
    live.close()


def test_rescue_of_an_empty_session_hands_on_nothing(tmp_path, broker, workers):
    write_handlers(tmp_path, "def handle(msg):\n    pass\n")
    w = workers(make_spec(tmp_path, broker.settings(), release_only=True))
    assert w.wait_exit() == 0, f"nothing to do is a success: {w.log_text()}"
    assert w.last.handed_on == 0, "nothing handed on"


def test_rescue_without_a_broker_keeps_the_session_and_says_why(tmp_path, workers):
    from rmqtui.engine.broker import free_port
    from rmqtui.engine.protocol import BrokerSettings

    write_handlers(tmp_path, "def handle(msg):\n    pass\n")
    w = workers(make_spec(tmp_path, BrokerSettings(host="127.0.0.1", port=free_port()), release_only=True,
                          release_idle_timeout=2.0))
    assert w.wait_exit(timeout=40) == 1, "a rescue that cannot finish fails, for the supervisor to retry"
    assert "its session is kept" in w.log_text(), "the log says nothing was lost and why"
