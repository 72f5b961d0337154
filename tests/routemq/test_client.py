"""The ``client`` RouteMQ handlers get: paho's publish surface over the message's own publish."""

from __future__ import annotations

import pytest

from rmqtui.routemq.adapter import WorkerClient


class Recorded:
    """A message that records what is published through it (the worker's outbox is tested elsewhere)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def publish(self, topic, payload, qos=0, retain=False):
        self.calls.append((topic, payload, qos, retain))
        return "info"


def test_publish_goes_through_the_message_with_paho_arguments():
    msg = Recorded()
    client = WorkerClient(msg)
    assert client.publish("replies/a", '{"ok": true}', 1) == "info", "returns what msg.publish returns"
    client.publish("n", 5, qos=0, retain=True)
    client.publish("empty")
    assert msg.calls == [("replies/a", '{"ok": true}', 1, False), ("n", "5", 0, True), ("empty", None, 0, False)], \
        f"calls {msg.calls}"
    assert client._client_id.startswith(b"rmqtui-"), "RouteMQ's example middleware reads client._client_id"


def test_without_message_publish_the_error_says_what_is_missing():
    with pytest.raises(NotImplementedError, match="needs rmqtui with handler publishing"):
        WorkerClient(object()).publish("t", b"x")
    with pytest.raises(NotImplementedError, match="properties"):
        WorkerClient(Recorded()).publish("t", b"x", properties=object())


def test_other_paho_methods_explain_themselves():
    with pytest.raises(AttributeError, match="only publishes"):
        WorkerClient(Recorded()).subscribe("x")
