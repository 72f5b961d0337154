"""Throughput: a smoothed msg/s per slot from its heartbeats, and a per-route history for sparklines."""

from __future__ import annotations

import collections

HISTORY = 60  # seconds of route throughput kept for sparklines
STALE_AFTER = 2.5  # seconds without a heartbeat after which a slot's rate counts as 0


class RateMeter:
    """Messages per second of one slot, from (heartbeat time, handled total) pairs."""

    __slots__ = ("rate", "_mark")

    def __init__(self) -> None:
        self.rate = 0.0
        self._mark: tuple[float, int] | None = None

    def update(self, when: float, handled: int) -> None:
        """Fold in one reading; the rate moves at most once per ~second, half old, half new."""
        mark = self._mark
        if mark is None:
            self._mark = (when, handled)
            return
        dt = when - mark[0]
        if dt >= 0.9:
            current = max(0.0, (handled - mark[1]) / dt)
            self.rate = current if self.rate == 0.0 else 0.5 * self.rate + 0.5 * current
            self._mark = (when, handled)

    def reset(self) -> None:
        """The process ended: no rate until the next one reports twice."""
        self.rate = 0.0
        self._mark = None


class RouteHistory:
    """One msg/s value per second for a route, oldest first."""

    def __init__(self, size: int = HISTORY) -> None:
        self.values: collections.deque[float] = collections.deque(maxlen=size)
        self._last: float | None = None

    def due(self, now: float) -> bool:
        """Whether a second has passed since the last value (``now`` is monotonic)."""
        return self._last is None or now - self._last >= 1.0

    def append(self, now: float, value: float) -> None:
        self._last = now
        self.values.append(value)
