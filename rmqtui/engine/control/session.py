"""One connection to the control socket: its role, its streams, and an outbox that never grows without bound.

A client that reads slowly gets the latest snapshot (older ones are replaced,
never queued), at most :data:`LOG_QUEUE` log records (the oldest are dropped
and the count is sent with the next batch) and at most :data:`EVENT_QUEUE`
events.  Replies are kept in order; a client that stops reading its replies is
disconnected.
"""

from __future__ import annotations

import collections
import socket
import threading

from ..snapshot import FleetSnapshot
from .codec import dumps
from .delta import DeltaEncoder

LOG_QUEUE = 2000
EVENT_QUEUE = 500
REPLY_QUEUE = 256
LOG_BATCH = 500
STREAMS = ("snapshot", "log", "event")


class Session:
    """The server's side of one client connection (the writer thread lives here)."""

    def __init__(self, sock: socket.socket, role: str, peer: tuple[int, int, int]) -> None:
        self.sock = sock
        self.role = role
        self.peer = peer
        self.streams: set[str] = set()
        self.interval = 1.0
        self.rows = False  # snapshots with workers as rows of values (the client asked for them)
        self.delta: DeltaEncoder | None = None  # snapshots with only the changed workers (see delta.py)
        self.next_snapshot = 0.0
        self.log_worker: str | None = None
        self.dropped_logs = 0
        self.dropped_events = 0
        self.closed = False
        self._cond = threading.Condition()
        self._replies: collections.deque[bytes | FleetSnapshot] = collections.deque()
        self._snapshot: bytes | FleetSnapshot | None = None  # a snapshot object is encoded when written
        self._logs: collections.deque[dict] = collections.deque(maxlen=LOG_QUEUE)
        self._events: collections.deque[dict] = collections.deque(maxlen=EVENT_QUEUE)
        self._writer = threading.Thread(target=self._write_loop, name="rmqtui-control-writer", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._writer.start()

    # -- producers (any thread) ----------------------------------------------------------------

    def reply(self, message: dict) -> None:
        """Queue a response; a client that lets :data:`REPLY_QUEUE` replies pile up is disconnected."""
        with self._cond:
            if len(self._replies) >= REPLY_QUEUE:
                self.close()
                return
            self._replies.append(dumps(message))
            self._cond.notify()

    def offer_snapshot(self, line: bytes | FleetSnapshot) -> None:
        """Replace whatever snapshot is still unsent with ``line`` (coalescing); a FleetSnapshot is
        for a delta session and is encoded by the writer against what it wrote last."""
        with self._cond:
            self._snapshot = line
            self._cond.notify()

    def send_snapshot_now(self, line: bytes | FleetSnapshot) -> None:
        """Send ``line`` before any reply queued after it (a command's reply follows its effect)."""
        with self._cond:
            self._snapshot = None  # older than this one
            self._replies.append(line)
            self._cond.notify()

    def offer_logs(self, records: list[dict]) -> None:
        """Queue log records of the subscribed worker (or all); count those the bounded queue drops."""
        if self.log_worker is not None:
            records = [r for r in records if r["source"] == self.log_worker]
        if not records:
            return
        with self._cond:
            overflow = len(self._logs) + len(records) - LOG_QUEUE
            if overflow > 0:
                self.dropped_logs += overflow
            self._logs.extend(records)
            self._cond.notify()

    def offer_event(self, event: dict) -> None:
        """Queue one event; the oldest are dropped (and counted) past :data:`EVENT_QUEUE`."""
        with self._cond:
            if len(self._events) == EVENT_QUEUE:
                self.dropped_events += 1
            self._events.append(event)
            self._cond.notify()

    def pending(self) -> tuple[int, int, int, int]:
        """``(replies, snapshots, log records, events)`` waiting to be sent (bounded by design)."""
        with self._cond:
            return len(self._replies), int(self._snapshot is not None), len(self._logs), len(self._events)

    def close(self) -> None:
        """Disconnect; the writer thread ends and the reader sees EOF."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            self._cond.notify()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- the writer thread --------------------------------------------------------------------

    def _next_line(self) -> bytes | None:
        with self._cond:
            while not self.closed and not (self._replies or self._snapshot or self._logs or self._events):
                self._cond.wait()
            if self.closed:
                return None
            if self._replies:
                return self._encoded(self._replies.popleft())
            if self._logs:
                batch = [self._logs.popleft() for _ in range(min(LOG_BATCH, len(self._logs)))]
                params = {"records": batch, "dropped": self.dropped_logs}
                return dumps({"jsonrpc": "2.0", "method": "log", "params": params})
            if self._snapshot is not None:
                line, self._snapshot = self._snapshot, None
                return self._encoded(line)
            event = self._events.popleft()
            event["dropped"] = self.dropped_events
            return dumps({"jsonrpc": "2.0", "method": "event", "params": event})

    def _encoded(self, item: bytes | FleetSnapshot) -> bytes:
        if isinstance(item, bytes):
            return item
        encoder = self.delta if self.delta is not None else DeltaEncoder()
        return dumps({"jsonrpc": "2.0", "method": "snapshot", "params": {"snapshot": encoder.encode(item)}})

    def _write_loop(self) -> None:
        while True:
            line = self._next_line()
            if line is None:
                break
            try:
                self.sock.sendall(line)
            except OSError:
                break
        self.close()  # shutdown only: the reader thread owns the descriptor and closes it in finish()

    def finish(self) -> None:
        """Called by the reader thread at EOF: stop the writer and release the socket."""
        self.close()
        if self._writer.is_alive():
            self._writer.join(timeout=5)
        self.sock.close()
