"""Alerts: an ``async`` handler, on a route with a single, non-shared worker."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rmqtui is not needed to import this module
    from rmqtui.message import Message

log = logging.getLogger(__name__)

_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING}


async def notify(msg: Message) -> None:
    """Forward ``alerts/{level}`` to the operator (here: the worker's log)."""
    level = _LEVELS.get(msg.params["level"].lower(), logging.DEBUG)
    # Stands in for an HTTP call to a pager; awaiting lets the worker stay responsive.
    await asyncio.sleep(0)
    log.log(level, "alert %s: %s", msg.params["level"], msg.text()[:200])
