"""Waiting in pilot tests by condition, never by a fixed time: a loaded machine is slow, not wrong."""

from __future__ import annotations

import time


async def until(pilot, predicate, timeout: float = 10.0) -> bool:
    """Let the app run until ``predicate()`` holds or ``timeout`` seconds pass; say whether it holds.

    The caller asserts on the result (or on what it waited for), so a timeout fails with its message.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await pilot.pause(0.02)
    return True
