"""Snapshot streams that carry only the workers that changed.

An attached TUI gets a snapshot every second.  Sending every worker each time cost the
supervisor an encoding and the client a decoding of the whole fleet per second, although an
idle worker's snapshot does not change (it carries its start time, not its uptime, and the
engine keeps the same object while nothing changed).  A client that asks for ``"delta": true``
gets, on its connection:

- first a full snapshot: ``"delta": false``, ``worker_fields``, ``ids`` (every worker id in
  order) and every worker as a row;
- then deltas: ``"delta": true``, the fleet's header (routes, broker, totals) in full, ``workers``
  with the rows of only the workers whose snapshot changed since the last one written to this
  client, and ``ids`` only when the set or order of workers changed.

Deltas are computed by the session's writer thread when it writes, against what it wrote
last, so a slow client that skips snapshots (only the newest is kept) still gets a consistent
stream.  A server that does not know deltas sends full snapshots, which the decoder also reads.
"""

from __future__ import annotations

from ..snapshot import FleetSnapshot, WorkerSnapshot
from .codec import WORKER_FIELDS, header_from_dict, header_to_dict, worker_from_values, worker_row

_ID = WORKER_FIELDS.index("id")


class DeltaEncoder:
    """The server's side: what one client was sent last."""

    def __init__(self) -> None:
        self._sent: dict[str, WorkerSnapshot] | None = None  # None: nothing sent yet, the next is full
        self._order: list[str] = []

    def encode(self, snap: FleetSnapshot) -> dict:
        """``snap`` as a full snapshot (the first time) or a delta against the last one encoded."""
        data = header_to_dict(snap)
        ids = [w.id for w in snap.workers]
        sent = self._sent
        if sent is None:
            data["delta"] = False
            data["worker_fields"] = list(WORKER_FIELDS)
            data["workers"] = [worker_row(w) for w in snap.workers]
        else:
            data["delta"] = True
            data["workers"] = [worker_row(w) for w in snap.workers if sent.get(w.id) is not w]
        if sent is None or ids != self._order:
            data["ids"] = ids
        self._sent = {w.id: w for w in snap.workers}
        self._order = ids
        return data


class DeltaDecoder:
    """The client's side: the fleet as the stream built it so far.

    :meth:`apply` is cheap (it keeps rows as they came, the newest per worker) and is called for
    every snapshot message, in order; :meth:`snapshot` decodes only the rows that came since
    the last call and reuses every other worker's object.
    """

    def __init__(self) -> None:
        self._header: dict | None = None
        self._fields: list | None = None
        self._id_at: int | None = _ID  # where rows carry the worker id (None: workers are objects)
        self._order: list[str] = []
        self._workers: dict[str, WorkerSnapshot] = {}
        self._pending: dict[str, list | dict] = {}
        self._snapshot: FleetSnapshot | None = None

    @property
    def ready(self) -> bool:
        """True once a full snapshot came."""
        return self._header is not None

    def apply(self, data: dict) -> None:
        """One snapshot message's ``params.snapshot``; raises ValueError on a delta with no full one before it."""
        rows = data["workers"]
        ids = data.get("ids")
        if not data.get("delta"):  # a full snapshot (or a server that sends only full ones)
            fields = data.get("worker_fields")
            id_at = None if fields is None else fields.index("id")  # ValueError (nothing changed): no ids
            self._fields, self._id_at = fields, id_at
            self._workers, self._pending = {}, {}
            if ids is None:
                ids = [self._id_of(row) for row in rows]
        elif self._header is None:
            raise ValueError("a snapshot delta came before any full snapshot")
        for row in rows:
            self._pending[self._id_of(row)] = row
        if ids is not None:
            self._order = list(ids)
            keep = set(self._order)
            for gone in [k for k in self._workers if k not in keep]:
                del self._workers[gone]
            for gone in [k for k in self._pending if k not in keep]:
                del self._pending[gone]
        self._header = {k: v for k, v in data.items() if k != "workers"}
        self._snapshot = None

    def _id_of(self, row: list | dict) -> str:
        return row["id"] if self._id_at is None else row[self._id_at]

    def snapshot(self) -> FleetSnapshot | None:
        """The fleet as of the last message applied (None before the first full one)."""
        if self._header is None:
            return None
        if self._snapshot is None:
            now = self._header.get("time", 0.0)
            for key, row in self._pending.items():
                self._workers[key] = worker_from_values(self._fields, row, now)
            self._pending = {}
            workers = tuple(self._workers[k] for k in self._order if k in self._workers)
            self._snapshot = header_from_dict(self._header, workers)
        return self._snapshot
