"""The object a handler receives for every MQTT message."""

from __future__ import annotations

import json
from typing import Any, Protocol


class Outbox(Protocol):
    """What a worker lends a message so its handler can publish (implemented by the worker's client)."""

    def publish(self, message: "Message", topic: str, payload: Any, qos: int, retain: bool) -> Any: ...

    def reply(self, message: "Message", payload: Any, qos: int) -> Any: ...


class Message:
    """One delivered message, as a handler sees it.

    ``topic`` is the concrete topic with any ``$share/<group>/`` prefix removed,
    ``params`` the values of the route pattern's ``{name}`` parts, ``payload``
    the raw bytes.  ``redelivered`` is true when the broker sent it again after
    a worker stopped before acknowledging it, so a handler can make its effect
    idempotent.

    :meth:`publish` and :meth:`reply` send through the worker's own MQTT
    connection.  They never block (the handler runs off the network thread), and
    the incoming message is acknowledged only after the broker acknowledged
    every QoS 1/2 publish the handler made, so a crash in between redelivers the
    request instead of losing the reply.
    """

    __slots__ = ("topic", "_params", "payload", "qos", "redelivered", "route", "_properties", "__dict__")

    #: Set on the per-worker subclass :meth:`bound_to` makes, so no message pays for carrying it.
    _outbox: Outbox | None = None
    #: The route's topic pattern (on that subclass too): ``params`` is matched when a handler first asks
    _pattern: Any = None
    #: QoS 1/2 publishes of the handler to settle before the acknowledgement (set per message only
    #: when there are some: a default here costs nothing on the hot path)
    _sent: list | None = None

    def __init__(self, topic: str, params: dict[str, str] | None, payload: bytes, qos: int = 0,
                 redelivered: bool = False, route: str = "", properties: Any = None) -> None:
        self.topic = topic
        self._params = params  # None: matched from the topic on first use
        self.payload = payload
        self.qos = qos
        self.redelivered = redelivered
        self.route = route
        self._properties = properties  # MQTT v5 PUBLISH properties of the request, or None

    @classmethod
    def bound_to(cls, outbox: Outbox | None, pattern: Any = None) -> type["Message"]:
        """A subclass whose messages publish through ``outbox`` and take their ``params`` from
        ``pattern`` (a :class:`~rmqtui.engine.topics.TopicPattern`); one per worker."""
        return type(cls.__name__, (cls,), {"__slots__": (), "_outbox": outbox, "_pattern": pattern,
                                           "__module__": cls.__module__})

    @property
    def params(self) -> dict[str, str]:
        """The values of the route pattern's ``{name}`` parts (matched once, when first asked for:
        a handler that never reads them costs nothing for them)."""
        params = self._params
        if params is None:
            found = self._pattern.match(self.topic) if self._pattern is not None else None
            params = self._params = {} if found is None else found
        return params

    def text(self, encoding: str = "utf-8") -> str:
        """The payload decoded as text."""
        return self.payload.decode(encoding)

    def json(self) -> Any:
        """The payload parsed as JSON (raises ``ValueError`` on a malformed payload)."""
        return json.loads(self.payload)

    @property
    def response_topic(self) -> str | None:
        """The MQTT v5 response topic of a request, or ``None``."""
        return getattr(self._properties, "ResponseTopic", None)

    @property
    def correlation_data(self) -> bytes | None:
        """The MQTT v5 correlation data of a request, or ``None``."""
        return getattr(self._properties, "CorrelationData", None)

    def publish(self, topic: str, payload: Any, qos: int = 0, retain: bool = False) -> Any:
        """Publish ``payload`` (bytes, str, or anything JSON can encode) to ``topic``.

        Returns paho's ``MQTTMessageInfo``; the call itself never waits for the broker.
        """
        return self._out().publish(self, topic, payload, qos, retain)

    def reply(self, payload: Any, qos: int | None = None) -> Any:
        """Answer an MQTT v5 request: publish to its response topic with its correlation data.

        ``qos`` defaults to the request's QoS.  Raises ``ValueError`` when the
        request carries no response topic (always the case on MQTT 3.1.1).
        """
        if self.response_topic is None:
            raise ValueError(f"the message on {self.topic} has no response topic to reply to "
                             f"(replies need MQTT v5 and a publisher that sets one)")
        return self._out().reply(self, payload, self.qos if qos is None else qos)

    def _out(self) -> Outbox:
        if self._outbox is None:
            raise RuntimeError("this message was not delivered by a worker, so it cannot publish")
        return self._outbox

    def __repr__(self) -> str:
        return f"Message(topic={self.topic!r}, params={self.params!r}, {len(self.payload)} bytes)"
