"""Example rmqtui handlers, one module per route.

A handler is ``def handler(msg: Message) -> None`` (or ``async def``).  Workers
import it; the supervisor never does, so a broken handler fails only its worker.
``msg.topic`` is the concrete topic, ``msg.params`` the pattern's ``{name}``
values, ``msg.payload`` the raw bytes (``msg.json()`` and ``msg.text()`` decode
it) and ``msg.redelivered`` tells a message the broker sent again.  The message
is acknowledged when the handler returns; raising an exception makes it retried
and, past ``fleet.handler_retries``, sent to the dead-letter topic.
"""
