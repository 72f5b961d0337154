"""Sensor readings: I/O-bound, like writing each reading to a database."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rmqtui is not needed to import this module
    from rmqtui.message import Message

log = logging.getLogger(__name__)


def process_data(msg: Message) -> None:
    """Parse a JSON reading from ``sensors/{device_id}/data`` and "store" it."""
    reading = msg.json()
    device = msg.params["device_id"]
    # Stands in for the round trip of a database write.
    time.sleep(0.001)
    if msg.redelivered:
        log.debug("reading from %s redelivered; a real store would upsert it", device)
    if isinstance(reading, dict) and "value" not in reading:
        log.warning("reading from %s has no 'value': %r", device, reading)
