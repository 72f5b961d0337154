"""Log files that outlast the fleet, and the workers' log discipline.

Everything lives in the fleet's private state directory, ``logs/``:

* ``fleet.log``: every record the supervisor gets (its own events and every worker's records, with the
  worker id), through :class:`logging.handlers.RotatingFileHandler`;
* ``<route>-<slot>.log``: what a slot's processes write to stdout/stderr, line by line, plus anything
  written below Python (C extensions, the interpreter's last traceback).

Both are size-capped and rotated the same way (``name.log`` -> ``name.log.1`` ... ``.BACKUPS``), files 0600.

A worker's stdout/stderr are replaced by :class:`LineCapture` writers: each complete line becomes a log
record (logger ``stdout`` at INFO, ``stderr`` at WARNING) and the bytes still reach the slot's file at once,
so a crash loses nothing.  Records to the supervisor pass a per-worker :class:`RateGate`.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import threading
import time
from pathlib import Path
from typing import Callable

from .textsafe import clean

SLOT_LOG_BYTES = 1 << 20  # a slot's file is rotated past this size ...
FLEET_LOG_BYTES = 4 << 20  # ... and the fleet log past this one
BACKUPS = 3  # rotated copies kept of each
LINE_LIMIT = 2000  # characters of one captured line sent as a record (the file gets it whole)
RATE = 200.0  # records per second per worker, sustained ...
BURST = 400  # ... with this many at once


def rotate(path: str | os.PathLike, backups: int = BACKUPS) -> None:
    """Shift ``path`` to ``path.1`` (``.1`` to ``.2`` ...), dropping the oldest; missing files are skipped."""
    path = str(path)
    for i in range(backups - 1, 0, -1):
        src = f"{path}.{i}"
        if os.path.exists(src):
            os.replace(src, f"{path}.{i + 1}")
    if os.path.exists(path):
        os.replace(path, f"{path}.1" if backups > 0 else path)


def rotate_if_big(path: str | None, limit: int = SLOT_LOG_BYTES, backups: int = BACKUPS) -> None:
    """Rotate a slot's file before its next process starts when it has passed ``limit`` bytes."""
    if not path:
        return
    try:
        if os.path.getsize(path) > limit:
            rotate(path, backups)
    except OSError:
        pass


def open_private(path: str) -> int:
    """An append-only descriptor on ``path``, created 0600."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


class RateGate:
    """A token bucket for one worker's records: ``rate`` a second, ``burst`` at once; counts what it refuses.

    The default (200/s, burst 400) is ten times what a busy handler logs at INFO and lets a debug
    burst through whole, while a debug flood from a whole fleet stays within what the event ring
    (5,000 records) and the log pane can take in a second or two.
    """

    def __init__(self, rate: float = RATE, burst: int = BURST, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self.tokens = float(burst)
        self.last = clock()
        self.dropped = 0
        self.reported = self.last
        self.lock = threading.Lock()

    def take(self) -> bool:
        """Whether one more record may go now."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            self.dropped += 1
            return False

    def due_report(self, force: bool = False) -> int:
        """Records dropped since the last report, at most once a second unless ``force`` (0: nothing to say)."""
        with self.lock:
            now = self.clock()
            if not self.dropped or (now - self.reported < 1.0 and not force):
                return 0
            n, self.dropped, self.reported = self.dropped, 0, now
            return n


def dropped_message(n: int) -> str:
    return f"{n} log records dropped (rate limit)"


class LineCapture(io.TextIOBase):
    """A worker's ``sys.stdout``/``sys.stderr``: bytes to the slot's file now, one record per complete line.

    * Every ``write`` goes to ``fd`` at once (the slot's file, also fd 1/2): nothing waits in a buffer,
      so the last line before a crash is in the file.
    * A partial line is held until its newline; ``close_line()`` (at exit) sends what is held.
    * A line longer than :data:`LINE_LIMIT` goes out as a record cut there (the file keeps it whole);
      the rest of it, up to its newline, is not sent again.
    * ``emit(level, name, text)`` must not write to this object; a write from inside ``emit`` (an error
      handler printing) only reaches the file.
    * ``on_big`` is called when the file passes ``limit`` bytes (the worker rotates it and re-points fds).
    """

    def __init__(self, name: str, level: str, fd: int, emit: Callable[[str, str, str], None], *,
                 limit: int = SLOT_LOG_BYTES, on_big: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.name, self.level, self.fd, self.emit = name, level, fd, emit
        self.limit, self.on_big = limit, on_big
        self._held = ""
        self._skipping = False  # inside an over-long line already sent
        self._lock = threading.RLock()
        self._inside = threading.local()
        self._written = 0

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fd

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if not s:
            return 0
        self._to_file(s.encode("utf-8", "replace"))
        if getattr(self._inside, "on", False):
            return len(s)
        with self._lock:
            self._inside.on = True
            try:
                self._lines(s)
            finally:
                self._inside.on = False
        return len(s)

    def _lines(self, s: str) -> None:
        text = self._held + s
        *complete, self._held = text.split("\n")
        for line in complete:
            if self._skipping:
                self._skipping = False
                continue
            self._send(line)
        if len(self._held) > LINE_LIMIT and not self._skipping:
            self._send(self._held)
            self._skipping = True
        if self._skipping:
            self._held = ""

    def _send(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line.strip():
            return
        try:
            self.emit(self.level, self.name, clean(line, LINE_LIMIT))
        except Exception:  # noqa: BLE001 - a print must never take the worker down
            pass

    def _to_file(self, data: bytes) -> None:
        try:
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
                self._written += n
        except OSError:
            return
        if self.on_big is not None and self._written > 65536:
            self._written = 0
            try:
                big = os.fstat(self.fd).st_size > self.limit
            except OSError:
                big = False
            if big:
                self.on_big()

    def flush(self) -> None:
        """Nothing is buffered for the file; a held partial line waits for its newline."""

    def close_line(self) -> None:
        """Send a held partial line (the process is ending)."""
        with self._lock:
            held, self._held = self._held, ""
            if held and not self._skipping:
                self._send(held)


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files (the first and each rotated-in one) are created 0600."""

    def _open(self):
        return open(open_private(self.baseFilename), "a", encoding=self.encoding, errors=self.errors)

    def handleError(self, record: logging.LogRecord) -> None:
        """A full disk loses file lines, not the TUI's screen: no traceback on stderr."""


class FleetLog:
    """``fleet.log``: one line per record the supervisor gets, rotated by size."""

    def __init__(self, path: Path, limit: int = FLEET_LOG_BYTES, backups: int = BACKUPS) -> None:
        self.path = path
        self.handler = _PrivateRotatingHandler(path, maxBytes=limit, backupCount=backups, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))

    def write(self, when: float, level: str, source: str, message: str) -> None:
        number = logging.getLevelName(level)
        record = logging.LogRecord(source, number if isinstance(number, int) else logging.INFO, "", 0,
                                   message, None, None)
        record.created = when
        record.msecs = (when - int(when)) * 1000
        try:
            self.handler.emit(record)  # reports its own errors (handleError) instead of raising
        except Exception:  # noqa: BLE001 - a full disk must not stop the fleet
            pass

    def close(self) -> None:
        self.handler.close()
