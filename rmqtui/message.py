"""The object a handler receives for every MQTT message."""

from __future__ import annotations

import json
from typing import Any


class Message:
    """One delivered message, as a handler sees it.

    ``topic`` is the concrete topic with any ``$share/<group>/`` prefix removed,
    ``params`` the values of the route pattern's ``{name}`` parts, ``payload``
    the raw bytes.  ``redelivered`` is true when the broker sent it again after
    a worker stopped before acknowledging it, so a handler can make its effect
    idempotent.
    """

    __slots__ = ("topic", "params", "payload", "qos", "redelivered", "route")

    def __init__(self, topic: str, params: dict[str, str], payload: bytes, qos: int = 0,
                 redelivered: bool = False, route: str = "") -> None:
        self.topic = topic
        self.params = params
        self.payload = payload
        self.qos = qos
        self.redelivered = redelivered
        self.route = route

    def text(self, encoding: str = "utf-8") -> str:
        """The payload decoded as text."""
        return self.payload.decode(encoding)

    def json(self) -> Any:
        """The payload parsed as JSON (raises ``ValueError`` on a malformed payload)."""
        return json.loads(self.payload)

    def __repr__(self) -> str:
        return f"Message(topic={self.topic!r}, params={self.params!r}, {len(self.payload)} bytes)"
