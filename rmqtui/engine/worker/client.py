"""The worker's paho client: connect under the slot's id, publish for handlers, end the session.

Every callback rmqtui installs is wrapped by :meth:`Connection.guard`, so an
exception inside one (which ends paho's network thread) is recorded with its
reason, and :meth:`Connection.network_failure` also notices a network thread
that ended for any other reason: the worker then exits instead of staying
alive but deaf.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..protocol import WorkerSpec

_MAX_TOPIC_BYTES = 65535

log = logging.getLogger("rmqtui.worker")


def filter_problem(topic_filter: str) -> str:
    """Why ``topic_filter`` is not a valid MQTT subscription filter, or ``""``.

    paho raises inside the network thread on some of these, and brokers close
    the connection on others; checked before connecting so the slot fails with
    the reason instead.
    """
    if not topic_filter:
        return "the subscription filter is empty"
    if len(topic_filter.encode("utf-8")) > _MAX_TOPIC_BYTES:
        return f"the subscription filter is longer than MQTT's {_MAX_TOPIC_BYTES} bytes"
    if "\x00" in topic_filter:
        return "the subscription filter contains a NUL character"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            return (f"level {level!r} of the subscription filter {topic_filter!r} mixes a wildcard with "
                    f"other characters (a wildcard must be a whole level)")
        if level == "#" and i != len(levels) - 1:
            return f"'#' is not the last level of the subscription filter {topic_filter!r}"
    return ""


def topic_problem(topic: str) -> str:
    """Why ``topic`` cannot be published to, or ``""``."""
    if not topic:
        return "the topic is empty"
    if "+" in topic or "#" in topic:
        return f"the topic {topic[:80]!r} contains a wildcard (+ or #)"
    if len(topic.encode("utf-8")) > _MAX_TOPIC_BYTES:
        return f"the topic is longer than MQTT's {_MAX_TOPIC_BYTES} bytes"
    return ""


def _encode(payload: Any) -> bytes | str:
    if isinstance(payload, (bytes, bytearray, str)):
        return payload
    if payload is None:
        return b""
    return json.dumps(payload)


#: v5 PUBLISH properties a copy keeps (a subscription identifier or topic alias must not be sent back)
_KEPT_PROPERTIES = ("PayloadFormatIndicator", "MessageExpiryInterval", "ContentType", "ResponseTopic",
                    "CorrelationData", "UserProperty")


def republish_properties(msg: Any) -> Properties | None:
    """The properties of a delivered v5 message that a republished copy should carry, or ``None``."""
    src = getattr(msg, "properties", None)
    if src is None:
        return None
    props = Properties(PacketTypes.PUBLISH)
    for name in _KEPT_PROPERTIES:
        if hasattr(src, name):
            setattr(props, name, getattr(src, name))
    return props


class WaitOnNetworkThread(BaseException):
    """A handler on paho's network thread waits for its own publish: only another thread can serve that.

    A ``BaseException`` so that a handler's ``except Exception`` does not swallow it; the worker
    catches it, moves its handler to a thread of its own and runs the message again there."""


class HeldPublish:
    """What a handler on the network thread gets back from a QoS 1/2 publish: paho's
    ``MQTTMessageInfo``, except that waiting for it on that thread (which would wait for the
    very packets it stops) raises :class:`WaitOnNetworkThread` instead of hanging."""

    __slots__ = ("_info", "_conn")

    def __init__(self, info: mqtt.MQTTMessageInfo, conn: "Connection") -> None:
        self._info = info
        self._conn = conn

    def wait_for_publish(self, timeout: float | None = None) -> None:
        if threading.current_thread() is self._conn.thread:
            raise WaitOnNetworkThread()
        self._info.wait_for_publish(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._info, name)


class Connection:
    """One paho client under the slot's client id, with a watched network thread."""

    def __init__(self, spec: WorkerSpec, *, clean: bool = False) -> None:
        self.spec = spec
        self.v5 = spec.broker.protocol == "v5"
        self.failure = ""  # first exception raised inside one of our callbacks
        self.thread: threading.Thread | None = None
        self.published = 0  # handler publishes
        self.client = self._make(clean)

    def _make(self, clean: bool) -> mqtt.Client:
        b = self.spec.broker
        kwargs: dict[str, Any] = {}
        if not self.v5:
            kwargs["clean_session"] = clean
        if b.unix_path:
            kwargs["transport"] = "unix"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.spec.client_id,
                             protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311, manual_ack=True, **kwargs)
        if b.username:
            client.username_pw_set(b.username, b.password or None)
        if b.tls_ca or b.tls_cert:
            client.tls_set(ca_certs=b.tls_ca, certfile=b.tls_cert, keyfile=b.tls_key)
            if b.tls_insecure:
                client.tls_insecure_set(True)
        # reconnect fast: after a broker restart, Mosquitto drops what is published to a persistent
        # session's subscriptions until that client is back
        client.reconnect_delay_set(min_delay=0.1, max_delay=5)
        return client

    def guard(self, callback: Callable) -> Callable:
        """``callback`` recording the first exception it raises (paho then ends its thread)."""
        @functools.wraps(callback)
        def guarded(*args: Any) -> Any:
            try:
                return callback(*args)
            except BaseException as exc:
                self.note_failure(exc, callback.__name__)
                raise
        return guarded

    def note_failure(self, exc: BaseException, where: str) -> None:
        """Remember the first exception that ends paho's network thread."""
        if not self.failure:
            self.failure = f"{type(exc).__name__} in {where}: {exc}"

    def start(self, *, clean_start: bool = False) -> None:
        """Connect in the background (paho retries until the broker answers) and start the network thread."""
        b = self.spec.broker
        kwargs: dict[str, Any] = {}
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if clean_start else self.spec.session_expiry
            kwargs = {"clean_start": clean_start, "properties": props}
        self.client.connect_async(*self._address(), keepalive=b.keepalive, **kwargs)
        self.client.loop_start()
        # paho's own handle on its thread is private and cleared when the thread ends; keep ours
        self.thread = next((t for t in threading.enumerate() if t.name.startswith("paho-mqtt-client-")
                            and t.name.endswith(self.spec.client_id)), None)

    def _address(self) -> tuple[str, int]:
        b = self.spec.broker
        # paho checks the port even for a unix socket, where it means nothing
        return (b.unix_path, b.port or 1883) if b.unix_path else (b.host, b.port)

    def network_failure(self) -> str:
        """Why the network thread is gone (``""`` while it runs or before it started)."""
        if self.failure:
            return self.failure
        if self.thread is not None and not self.thread.is_alive():
            return "paho's network thread ended unexpectedly"
        return ""

    def stop(self, *, end_session: bool) -> None:
        """Disconnect; with ``end_session`` the broker forgets the session (v5 expiry 0, 3.1.1 clean connect)."""
        client = self.client
        self.thread = None  # from here on, the thread ending is expected
        if self.v5 and end_session:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
            client.disconnect(properties=props)
        else:
            client.disconnect()
        client.loop_stop()
        if end_session and not self.v5:
            self._erase_v311_session()

    def _erase_v311_session(self) -> None:
        """A 3.1.1 session ends only by connecting once with clean_session=True."""
        b = self.spec.broker
        eraser = self._make(clean=True)
        try:
            eraser.connect(*self._address(), keepalive=b.keepalive)
            eraser.loop_start()
            deadline = time.monotonic() + 2.0
            while not eraser.is_connected() and time.monotonic() < deadline:
                time.sleep(0.01)
            eraser.disconnect()
            eraser.loop_stop()
        except OSError as exc:
            log.warning("could not end the session of %s: %s", self.spec.client_id, exc)

    # -- publishing -----------------------------------------------------------
    def publish_dead(self, topic: str, body: str) -> None:
        """Publish a dead letter (QoS 1)."""
        self.client.publish(topic, body, qos=1)

    def publish(self, message: Any, topic: str, payload: Any, qos: int, retain: bool,
                properties: Any = None) -> mqtt.MQTTMessageInfo:
        """A handler's publish: queued on the client, remembered on ``message`` when it needs a PUBACK."""
        problem = topic_problem(topic)
        if problem:
            raise ValueError(f"cannot publish: {problem}")
        info = self.client.publish(topic, _encode(payload), qos=qos, retain=retain, properties=properties)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise RuntimeError("cannot publish: the client's outgoing queue is full")
        self.published += 1
        if qos:
            if message._sent is None:
                message._sent = []
            message._sent.append(info)
            if threading.current_thread() is self.thread:
                return HeldPublish(info, self)
        return info

    def reply(self, message: Any, payload: Any, qos: int) -> mqtt.MQTTMessageInfo:
        """Publish to the request's response topic with its correlation data (MQTT v5)."""
        props = Properties(PacketTypes.PUBLISH)
        if message.correlation_data is not None:
            props.CorrelationData = message.correlation_data
        return self.publish(message, message.response_topic, payload, qos, False, props)

    @staticmethod
    def delivered(info: mqtt.MQTTMessageInfo) -> bool:
        """True once the broker acknowledged the publish behind ``info`` (sent, for QoS 0)."""
        # A publish made while disconnected has rc NO_CONN but stays queued and goes out on
        # reconnect; is_published() raises for it, so read the flag paho sets on the PUBACK.
        return info._published  # noqa: SLF001

    def settle(self, message: Any) -> None:
        """Block until the broker acknowledged every QoS 1/2 publish of ``message``'s handler."""
        for info in message._sent:
            with info._condition:  # noqa: SLF001 - the condition paho notifies on the PUBACK
                while not self.delivered(info):
                    info._condition.wait(0.5)  # noqa: SLF001
        message._sent = None

    async def settled(self, message: Any) -> None:
        """:meth:`settle` for coroutine handlers: waits without blocking the event loop."""
        while not all(self.delivered(info) for info in message._sent):
            await asyncio.sleep(0.001)
        message._sent = None
