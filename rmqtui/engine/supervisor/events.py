"""The fleet's event ring: supervisor events and worker log records, numbered, bounded."""

from __future__ import annotations

import collections

from ..snapshot import LogRecord
from ..textsafe import clean

LOG_HISTORY = 5000


class EventRing:
    """A bounded, numbered history of :class:`LogRecord` s; a reader asks for "everything after N"."""

    def __init__(self, size: int = LOG_HISTORY) -> None:
        self._records: collections.deque[LogRecord] = collections.deque(maxlen=size)
        self.seq = 0
        self.sink = None  # called with each record as it is added (the fleet log file)

    def add(self, level: str, source: str, message: str, when: float) -> LogRecord:
        """Append one record stamped ``when`` (unix time) and return it.

        Every record passes here, so this is where text from workers and payloads loses its escape
        sequences and control characters and is cut to a bounded length, before any front end sees it."""
        self.seq += 1
        record = LogRecord(self.seq, when, level, clean(source, 200), clean(message))
        self._records.append(record)
        if self.sink is not None:
            self.sink(record)
        return record

    def since(self, seq: int) -> list[LogRecord]:
        """Records with ``record.seq > seq``, oldest first (what is still in the ring)."""
        records = self._records
        if not records or records[-1].seq <= seq:
            return []
        first = records[0].seq
        if seq < first:
            return list(records)
        # seq numbers are consecutive inside the ring: slice by offset, no scan
        return list(records)[seq - first + 1:]

    def __len__(self) -> int:
        return len(self._records)
