"""Per-worker figures over the last minutes, kept by the TUI from successive snapshots (no Textual)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from rmqtui.engine.snapshot import FleetSnapshot

KEEP_SECONDS = 600.0
"""How far back the detail view's charts reach."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One worker at one snapshot."""

    time: float
    rate: float
    cpu: float | None
    uss: int | None


class FleetHistory:
    """Samples per worker id, at most one per snapshot time, for :data:`KEEP_SECONDS`.

    Bounded by design: ``KEEP_SECONDS / refresh`` samples per worker, and the
    samples of a worker that left the fleet are dropped at the next snapshot.
    """

    def __init__(self, keep_seconds: float = KEEP_SECONDS, max_samples: int = 1200) -> None:
        self.keep_seconds = keep_seconds
        self._samples: dict[str, deque[Sample]] = {}
        self._max = max_samples
        self._last_time: float | None = None

    def record(self, snap: FleetSnapshot) -> None:
        """Add one sample per worker of ``snap`` (ignored when the snapshot time did not move)."""
        if snap.time == self._last_time:
            return
        self._last_time = snap.time
        ids = set()
        for w in snap.workers:
            ids.add(w.id)
            samples = self._samples.setdefault(w.id, deque(maxlen=self._max))
            samples.append(Sample(snap.time, w.rate, w.cpu_percent, w.uss))
            while samples and samples[0].time < snap.time - self.keep_seconds:
                samples.popleft()
        for gone in self._samples.keys() - ids:
            del self._samples[gone]

    def of(self, worker: str) -> list[Sample]:
        """The samples of ``worker``, oldest first."""
        return list(self._samples.get(worker, ()))


def series(samples: list[Sample], field: str, width: int, now: float, span: float) -> list[float]:
    """``width`` values of ``field`` covering the ``span`` seconds up to ``now``, one per column.

    Each column is the mean of the samples that fall in it; a column with none between two
    samples holds the previous value (the chart is wider than the samples are dense), and
    columns before the first sample are 0.  Unknown figures (None) count as 0.
    """
    if width <= 0 or span <= 0:
        return []
    sums = [0.0] * width
    counts = [0] * width
    start = now - span
    for s in samples:
        if s.time < start:
            continue
        column = min(width - 1, int((s.time - start) / span * width))
        value = getattr(s, field)
        sums[column] += float(value) if value is not None else 0.0
        counts[column] += 1
    values = []
    last: float | None = None
    for total, n in zip(sums, counts):
        if n:
            last = total / n
        values.append(last if last is not None else 0.0)
    return values
