"""Unit tests of the worker's hot path (rmqtui/engine/worker/dispatch.py): no broker, no paho client."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest

from rmqtui.engine.protocol import BrokerSettings, WorkerSpec
from rmqtui.engine.worker.dispatch import (DEAD_LETTER_PAYLOAD_CAP, AsyncPump, Dispatcher, could_receive,
                                           dead_letter_match)
from rmqtui.message import Message


class Delivered:
    """What the dispatcher reads of a paho MQTTMessage."""

    def __init__(self, topic: str, payload: bytes = b"{}", *, mid: int = 1, qos: int = 1, dup: bool = False,
                 retain: bool = False, properties=None) -> None:
        self.topic, self.payload, self.mid, self.qos = topic, payload, mid, qos
        self.dup, self.retain, self.properties = dup, retain, properties


class Client:
    """Records acknowledgements and dead letters, in order."""

    def __init__(self) -> None:
        self.acks: list[int] = []
        self.dead: list[tuple[str, dict]] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append(mid)

    def publish_dead(self, topic: str, body: str) -> None:
        self.dead.append((topic, json.loads(body)))


def spec(**kw) -> WorkerSpec:
    base = dict(worker_id="r/0", route="r", slot=0, client_id="c-r-0", pattern="s/{dev}/data",
                subscribe_filter="$share/g/s/+/data", handler="h:f", qos=1, root=".",
                broker=BrokerSettings(host="127.0.0.1", port=1))
    base.update(kw)
    return WorkerSpec(**base)


def dispatcher(handler, client: Client, **kw) -> Dispatcher:
    return Dispatcher(spec(**kw), handler, ack=client.ack, publish_dead=client.publish_dead)


def test_handles_acks_and_counts_with_params():
    seen: list[Message] = []
    client = Client()
    d = dispatcher(seen.append, client)
    for mid in (5, 6):
        d.handle(Delivered(f"s/dev-{mid}/data", mid=mid))
    assert [m.params for m in seen] == [{"dev": "dev-5"}, {"dev": "dev-6"}], "params come from the pattern"
    assert client.acks == [5, 6], "each message is acknowledged once, in order"
    assert (d.received, d.handled, d.failed, d.dead_lettered) == (2, 2, 0, 0), "counters"
    assert d.current_mid.value == 0, "idle after the acknowledgement"


def test_qos0_is_never_acknowledged():
    client = Client()
    d = dispatcher(lambda m: None, client)
    d.handle(Delivered("s/a/data", qos=0))
    assert client.acks == [] and d.handled == 1, "QoS 0 has no PUBACK"


def test_retry_then_success_is_not_a_failure():
    calls = []

    def flaky(m):
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("not yet")

    client = Client()
    d = dispatcher(flaky, client, handler_retries=2)
    d.handle(Delivered("s/a/data", mid=9))
    assert len(calls) == 3, "two retries after the first failure"
    assert (d.handled, d.failed, d.dead_lettered) == (1, 0, 0), "a retry that works is a handled message"
    assert client.acks == [9] and client.dead == [], "acknowledged, nothing dead-lettered"


def test_dead_letter_after_retries():
    def broken(m):
        raise ValueError("bad payload")

    client = Client()
    d = dispatcher(broken, client, handler_retries=1)
    d.handle(Delivered("s/a/data", b"\xff\x00", mid=3))
    assert (d.handled, d.failed, d.dead_lettered) == (0, 1, 1), "one failure, one dead letter"
    assert client.acks == [3], "a dead-lettered message is acknowledged"
    topic, record = client.dead[0]
    assert topic == "rmqtui/dead/r", "the route's dead-letter topic"
    assert record["attempts"] == 2 and record["error"] == "ValueError: bad payload", "attempts and error"
    assert (record["encoding"], record["payload"]) == ("hex", "ff00"), "binary payloads travel as hex"


def test_dead_letter_payload_is_capped():
    client = Client()
    d = dispatcher(lambda m: 1 / 0, client, handler_retries=0)
    d.handle(Delivered("s/a/data", b"x" * (DEAD_LETTER_PAYLOAD_CAP + 10)))
    record = client.dead[0][1]
    assert len(record["payload"]) == DEAD_LETTER_PAYLOAD_CAP, "the payload is capped"
    assert record["truncated_from"] == DEAD_LETTER_PAYLOAD_CAP + 10, "and says how big it was"


def test_empty_dead_letter_topic_logs_and_acknowledges(caplog):
    client = Client()
    d = dispatcher(lambda m: 1 / 0, client, handler_retries=0, dead_letter_topic="")
    d.handle(Delivered("s/a/data", mid=4))
    assert client.dead == [], "nothing is published"
    assert (d.failed, d.dead_lettered) == (1, 0), "counted as failed, never as dead-lettered"
    assert client.acks == [4], "acknowledged, so the broker does not redeliver it forever"
    assert "dropped (dead_letter_topic is empty)" in caplog.text, "the log says it was dropped"


@pytest.mark.parametrize("topic", ["rmqtui/dead/r", "rmqtui/dead/other-route"])
def test_dead_letters_are_never_work(topic):
    calls = []
    client = Client()
    d = dispatcher(calls.append, client, pattern="#", subscribe_filter="#")
    d.handle(Delivered(topic, mid=8))
    assert calls == [], "a dead letter never reaches the handler"
    assert d.skipped == 1 and d.received == 0, "counted as skipped, not received"
    assert client.acks == [8], "acknowledged so it leaves the session"


def test_dead_letter_match_and_could_receive():
    assert dead_letter_match("rmqtui/dead/{route}", "r") == (("rmqtui/dead/",), "rmqtui/dead/r"), "prefix"
    assert dead_letter_match("dead-{route}", "r") == ((), "dead-r"), "a partial level only guards the own topic"
    assert dead_letter_match("", "r") == ((), ""), "disabled"
    assert could_receive("$share/g/#", "rmqtui/dead/{route}"), "# receives everything"
    assert could_receive("+/+/+", "rmqtui/dead/{route}"), "three single levels match a dead letter"
    assert could_receive("rmqtui/#", "rmqtui/dead/{route}"), "rmqtui/# too"
    assert not could_receive("$share/g/sensors/+/data", "rmqtui/dead/{route}"), "a different first level"
    assert not could_receive("+/+", "rmqtui/dead/{route}"), "too few levels"
    assert not could_receive("#", ""), "no dead-letter topic, nothing to guard"


def test_poison_message_is_dead_lettered_without_the_handler():
    calls = []
    client = Client()
    d = dispatcher(calls.append, client, poison_mids=frozenset({11}))
    d.handle(Delivered("s/a/data", mid=11, dup=True))
    assert calls == [], "the poison message never reaches the handler again"
    assert d.dead_lettered == 1 and client.dead[0][1]["attempts"] == 0, "dead-lettered as poison"
    assert client.acks == [11], "and acknowledged"
    d.handle(Delivered("s/a/data", mid=11, dup=False))
    assert len(calls) == 1, "a fresh message that reuses the mid is handled"


def test_retained_and_marker_are_not_work():
    calls = []
    client = Client()
    d = dispatcher(calls.append, client)
    d.marker_nonce = b"drain 1"
    d.handle(Delivered("s/a/data", mid=1, retain=True))
    d.handle(Delivered(d.marker, b"drain 0", mid=2))
    assert not d.marker_seen.is_set(), "a stale marker from an earlier drain is not the end"
    d.handle(Delivered(d.marker, b"drain 1", mid=3))
    assert d.marker_seen.is_set(), "our own marker is the end of the backlog"
    assert calls == [] and client.acks == [1, 2, 3], "none of them is work, all are acknowledged"


def test_async_handler_one_at_a_time():
    seen = []

    async def handler(m):
        await asyncio.sleep(0)
        seen.append(m.topic)

    client = Client()
    d = dispatcher(handler, client)
    d.handle(Delivered("s/a/data", mid=1))
    assert seen == ["s/a/data"] and client.acks == [1], "awaited before the acknowledgement"


def test_handler_publishes_are_settled_before_the_ack():
    events = []

    class Outbox:
        def publish(self, message, topic, payload, qos, retain):
            events.append(("publish", topic))
            message._sent = ["info"] if qos else None

        def settle(self, message):
            events.append(("settle", message._sent))
            message._sent = None

    client = Client()
    d = Dispatcher(spec(), lambda m: m.publish("out", b"x", qos=1), ack=lambda mid, qos: events.append(("ack", mid)),
                   publish_dead=client.publish_dead, outbox=Outbox())
    d.handle(Delivered("s/a/data", mid=7))
    assert events == [("publish", "out"), ("settle", ["info"]), ("ack", 7)], "PUBACK of the reply before the ack"


def test_message_without_a_worker_cannot_publish():
    m = Message("a", {}, b"")
    with pytest.raises(RuntimeError, match="not delivered by a worker"):
        m.publish("x", b"")
    with pytest.raises(ValueError, match="no response topic"):
        m.reply(b"")


async def settle() -> None:
    """Let the loop run every ready step (a fixed number of turns, not a time: a slow machine is not wrong)."""
    for _ in range(50):
        await asyncio.sleep(0)


def test_pump_acknowledges_in_arrival_order_and_limits_concurrency():
    gates: dict[int, asyncio.Event] = {}
    peak = [0, 0]

    async def handler(m):
        peak[0] += 1
        peak[1] = max(peak[1], peak[0])
        await gates[int(m.params["dev"])].wait()
        peak[0] -= 1

    async def scenario():
        client = Client()
        d = dispatcher(handler, client)
        pump = AsyncPump(d, 2)
        for i in range(1, 5):
            gates[i] = asyncio.Event()
            pump.arrive(Delivered(f"s/{i}/data", mid=i))
        await asyncio.sleep(0)
        assert pump.in_flight == 2, "no more than the limit in flight"
        gates[2].set()
        await settle()
        assert client.acks == [], "2 finished before 1: nothing is acknowledged ahead of 1"
        assert d.current_mid.value == 1, "the oldest unfinished message is the one a crash blames"
        gates[1].set()
        await settle()
        assert client.acks == [1, 2], "1 and 2 go out together, in order"
        gates[4].set()
        gates[3].set()
        await settle()
        return client.acks, d.handled

    acks, handled = asyncio.run(scenario())
    assert acks == [1, 2, 3, 4] and handled == 4, "every message acknowledged once, in arrival order"
    assert peak[1] == 2, "the limit held"


def test_pump_marker_waits_for_earlier_messages():
    gate = asyncio.Event

    async def scenario():
        release = gate()

        async def handler(m):
            await release.wait()

        client = Client()
        d = dispatcher(handler, client)
        d.marker_nonce = b"drain x"
        pump = AsyncPump(d, 4)
        pump.arrive(Delivered("s/a/data", mid=1))
        pump.arrive(Delivered(d.marker, b"drain x", mid=2))
        await settle()
        early = d.marker_seen.is_set()
        release.set()
        await settle()
        return early, d.marker_seen.is_set(), client.acks

    early, late, acks = asyncio.run(scenario())
    assert not early, "the marker is not reached while an earlier message is in the handler"
    assert late and acks == [1, 2], "reached after it, in order"


def test_pump_retries_and_dead_letters():
    async def scenario():
        async def broken(m):
            raise KeyError("k")

        client = Client()
        d = dispatcher(broken, client, handler_retries=1)
        pump = AsyncPump(d, 3)
        pump.arrive(Delivered("s/a/data", mid=1))
        await settle()
        return d, client

    d, client = asyncio.run(scenario())
    assert (d.failed, d.dead_lettered) == (1, 1) and client.dead[0][1]["attempts"] == 2, "retried once, then dead"
    assert client.acks == [1], "acknowledged after the dead letter"


def test_dispatch_imports_no_paho():
    root = Path(__file__).resolve().parents[2] / "rmqtui"
    for path in (root / "engine/worker/dispatch.py", root / "message.py", root / "engine/protocol.py",
                 root / "engine/topics.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.startswith("paho")], f"{path.name} must not import paho"


class Info:
    """paho's MQTTMessageInfo as far as held acknowledgements read it: its mid, and whether it is done."""

    def __init__(self, mid: int) -> None:
        self.mid, self.published = mid, False


class Outbox:
    """Stands in for the worker's connection: a handler's QoS 1 publishes, acknowledged when the test says."""

    def __init__(self) -> None:
        self.infos: list[Info] = []

    def publish(self, message, topic, payload, qos, retain):
        info = Info(100 + len(self.infos))
        if message._sent is None:
            message._sent = []
        message._sent.append(info)
        self.infos.append(info)
        return info

    @staticmethod
    def delivered(info) -> bool:
        return info.published


def test_held_acknowledgements_wait_for_publishes_and_keep_arrival_order():
    """On the network thread a request is acknowledged only once the broker acknowledged its handler's
    publishes, and never ahead of an older message (one without publishes or a marker waits behind it)."""
    client, outbox = Client(), Outbox()

    def handler(m):
        if m.params["dev"] == "pub":
            m.publish("out", b"x", qos=1)

    d = Dispatcher(spec(), handler, ack=client.ack, publish_dead=client.publish_dead, outbox=outbox)
    d.defer = True
    d.marker_nonce = b"end"
    d.handle(Delivered("s/pub/data", mid=1))
    d.handle(Delivered("s/plain/data", mid=2))
    d.handle(Delivered(d.marker, b"end", mid=3))
    assert client.acks == [] and not d.marker_seen.is_set(), "nothing passes the request waiting for its publish"
    assert d.handled == 2 and len(d.held) == 3, "handled, acknowledgements held"
    d.release_held(acked=999)  # a PUBACK for some other publish
    assert client.acks == [], "another publish's PUBACK releases nothing"
    # paho calls on_publish before it marks the publish done: the mid it passes is what says so
    d.release_held(acked=outbox.infos[0].mid)
    assert client.acks == [1, 2, 3] and d.marker_seen.is_set(), "released in arrival order, marker last"
    d.handle(Delivered("s/plain/data", mid=4))
    assert client.acks == [1, 2, 3, 4], "with nothing held, acknowledged at once"
    d.handle(Delivered("s/pub/data", mid=5))
    assert client.acks == [1, 2, 3, 4], "held for its publish"
    outbox.infos[1].published = True
    d.release_held()  # after a later message, with the flag set by then
    assert client.acks == [1, 2, 3, 4, 5], "a publish marked done releases its request too"


def test_params_are_matched_on_first_use():
    seen: list[Message] = []
    d = dispatcher(seen.append, Client())
    d.handle(Delivered("s/dev-9/data", mid=1))
    d.handle(Delivered("other/topic", mid=2))
    assert seen[0]._params is None, "not matched while the handler does not ask"
    assert seen[0].params == {"dev": "dev-9"} and seen[0].params is seen[0].params, "matched once, kept"
    assert seen[1].params == {}, "a topic outside the pattern has no params"
    assert Message("a", {"k": "v"}, b"").params == {"k": "v"}, "given params are kept as they are"
