"""The client side: a connection to a control socket, and :class:`RemoteFleet`, a FleetControl over it."""

from __future__ import annotations

import collections
import itertools
import json
import socket
import threading
from pathlib import Path
from typing import Callable

from ..api import CommandResult
from ..snapshot import FleetSnapshot, LogRecord
from . import paths
from .codec import dumps, record_from_dict, result_from_dict
from .delta import DeltaDecoder

LOG_HISTORY = 5000
#: How the server starts a snapshot notification; such lines go to ``on_snapshot_line``, not ``on_notify``.
SNAPSHOT_PREFIX = b'{"jsonrpc":"2.0","method":"snapshot","params":{"snapshot":'


class RemoteError(Exception):
    """The server answered with an error (``code`` as in JSON-RPC 2.0; -32001 = refused to a read-only caller)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class FleetGone(ConnectionError):
    """The connection to the fleet closed (the fleet stopped, or it was never there)."""


class Connection:
    """One socket to a fleet: blocking calls answered by a reader thread, notifications to ``on_notify``."""

    def __init__(self, path: Path | str, *, on_notify: Callable[[str, dict], None] | None = None,
                 timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.on_notify = on_notify
        self.on_snapshot_line: Callable[[bytes], None] | None = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(self.path))
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(None)
        self.closed = threading.Event()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, list] = {}  # id -> [event, answer]
        self._reader = threading.Thread(target=self._read_loop, name="rmqtui-control-client", daemon=True)
        self._reader.start()

    def call(self, method: str, params: dict | None = None, timeout: float = 15.0) -> dict:
        """Send one request and wait for its answer; raises RemoteError, FleetGone or TimeoutError."""
        rid = next(self._ids)
        slot = [threading.Event(), None]
        with self._lock:
            if self.closed.is_set():
                raise FleetGone(f"the fleet at {self.path} closed the connection")
            self._waiting[rid] = slot
        try:
            self.sock.sendall(dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}))
            if not slot[0].wait(timeout):
                raise TimeoutError(f"{method}: no answer from the fleet within {timeout:g}s")
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            raise FleetGone(f"the fleet at {self.path} is gone ({exc})") from None
        finally:
            with self._lock:
                self._waiting.pop(rid, None)
        answer = slot[1]
        if answer is None:
            raise FleetGone(f"the fleet at {self.path} closed the connection")
        if "error" in answer:
            error = answer["error"] or {}
            raise RemoteError(int(error.get("code", -32603)), str(error.get("message", "error")))
        return answer.get("result") or {}

    def close(self) -> None:
        """Disconnect (the fleet keeps running)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(timeout=5)

    def _read_loop(self) -> None:
        try:
            with self.sock.makefile("rb") as stream:
                for line in stream:
                    if self.on_snapshot_line is not None and line.startswith(SNAPSHOT_PREFIX):
                        self.on_snapshot_line(line)  # most of the traffic: its own, cheaper path
                        continue
                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue  # a line we cannot read is skipped, not fatal
                    if not isinstance(message, dict):
                        continue
                    if "id" in message and ("result" in message or "error" in message):
                        with self._lock:
                            slot = self._waiting.get(message["id"])
                        if slot is not None:
                            slot[1] = message
                            slot[0].set()
                    elif self.on_notify is not None and isinstance(message.get("params"), dict):
                        self.on_notify(str(message.get("method")), message["params"])
        except OSError:
            pass
        finally:
            with self._lock:
                self.closed.set()
                waiting = list(self._waiting.values())
            for slot in waiting:
                slot[0].set()
            self.sock.close()


def connect(config_path: Path | str, *, read_only: bool = False, **kwargs) -> Connection:
    """Connect to the fleet of ``config_path`` (operator socket unless ``read_only``); FleetGone if none answers."""
    candidates = (paths.read_only_candidates(config_path) if read_only
                  else [paths.socket_path(config_path, paths.OPERATOR, create=False)])
    errors = []
    for path in candidates:
        try:
            return Connection(path, **kwargs)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
    raise FleetGone(f"no fleet is running for {Path(config_path).resolve()} ({'; '.join(errors)})")


class RemoteFleet:
    """A :class:`~rmqtui.engine.api.FleetControl` for a fleet in another process.

    Snapshots and log records arrive as notifications on a reader thread, so
    :meth:`snapshot` and :meth:`logs_since` never wait on the socket; commands
    are one round trip, and their reply comes after a snapshot that already
    shows their immediate effect.
    """

    def __init__(self, config_path: Path | str | None = None, *, read_only: bool = False,
                 connection: Connection | None = None, interval: float = 1.0) -> None:
        self._snapshot: FleetSnapshot | None = None
        self._stream = DeltaDecoder()  # the fleet as the snapshot stream built it (only changes are sent)
        self._logs: collections.deque[LogRecord] = collections.deque(maxlen=LOG_HISTORY)
        self._lock = threading.Lock()
        self.dropped_logs = 0
        if connection is None:
            connection = connect(config_path, read_only=read_only, on_notify=self._notified)
        else:
            connection.on_notify = self._notified
        connection.on_snapshot_line = self._snapshot_line
        self.connection = connection
        self.info = connection.call("hello")
        self.role = self.info.get("role", paths.READ_ONLY)
        self._subscribe(interval)
        history = connection.call("logs", {"since": 0})["records"]
        # never call while holding the lock: the reader needs it
        first = connection.call("snapshot", {"rows": True})["snapshot"]
        with self._lock:  # history and stream overlap: merge by seq
            merged = {r["seq"]: record_from_dict(r) for r in history}
            merged.update((r.seq, r) for r in self._logs)
            self._logs = collections.deque(sorted(merged.values(), key=lambda r: r.seq)[-LOG_HISTORY:],
                                           maxlen=LOG_HISTORY)
            if not self._stream.ready:  # a pushed snapshot, if one came meanwhile, is as new or newer
                self._stream.apply(first)

    @property
    def read_only(self) -> bool:
        """True when this connection may only look."""
        return self.role != paths.OPERATOR

    @property
    def closed(self) -> bool:
        """True once the fleet closed the connection (it stopped) or :meth:`close` was called."""
        return self.connection.closed.is_set()

    @property
    def fleet_pid(self) -> int | None:
        """The pid of the process that runs the fleet."""
        return (self.info.get("fleet") or {}).get("pid")

    def _subscribe(self, interval: float) -> None:
        self._interval = interval
        self.connection.call("subscribe", {"streams": ["snapshot", "log"], "interval": interval, "rows": True,
                                           "delta": True})

    def _snapshot_line(self, line: bytes) -> None:
        # every message is applied, in order (a delta builds on the one before); rows are decoded
        # into worker snapshots only when the front end reads
        with self._lock:
            try:
                self._stream.apply(json.loads(line)["params"]["snapshot"])
            except Exception:  # noqa: BLE001 - a line we cannot read must never stop the reader thread
                pass  # skipped; the next full snapshot (every subscribe starts with one) repairs the stream

    def _notified(self, method: str, params: dict) -> None:
        if method == "log":
            records = [record_from_dict(r) for r in params.get("records", ())]
            with self._lock:
                last = self._logs[-1].seq if self._logs else 0
                self._logs.extend(r for r in records if r.seq > last)
                self.dropped_logs = int(params.get("dropped", 0))

    def close(self) -> None:
        """Detach: the fleet keeps running."""
        self.connection.close()

    # -- FleetControl -------------------------------------------------------------------------

    def snapshot(self) -> FleetSnapshot:
        """The latest snapshot the fleet pushed (decoded on first use; never waits on the socket)."""
        if self.closed:
            raise FleetGone("the fleet stopped (its control socket closed)")
        with self._lock:
            try:
                snap = self._stream.snapshot()
            except Exception:  # noqa: BLE001 - a row it cannot read: start again from a full snapshot
                self._stream, snap = DeltaDecoder(), None
                resync = True
            else:
                resync = False
        if resync:
            self._subscribe(self._interval)  # every subscribe starts with a full snapshot
        if snap is not None:
            self._snapshot = snap
        return self._snapshot

    def set_interval(self, seconds: float) -> None:
        """Ask for snapshots every ``seconds`` (a front end that refreshes slower needs fewer)."""
        self._subscribe(seconds)

    def logs_since(self, seq: int) -> list[LogRecord]:
        """Log records received with ``record.seq > seq``, oldest first."""
        with self._lock:
            if not self._logs or self._logs[-1].seq <= seq:
                return []
            return [r for r in self._logs if r.seq > seq]

    def _command(self, method: str, params: dict, timeout: float = 15.0) -> CommandResult:
        try:
            return result_from_dict(self.connection.call(method, params, timeout))
        except RemoteError as exc:
            return CommandResult.refused(str(exc))
        except (FleetGone, TimeoutError) as exc:
            return CommandResult.refused(str(exc))

    def add_worker(self, route: str) -> CommandResult:
        return self._command("add", {"route": route})

    def remove_worker(self, route: str, worker: str | None = None) -> CommandResult:
        return self._command("remove", {"route": route, "worker": worker})

    def scale(self, route: str, count: int) -> CommandResult:
        return self._command("scale", {"route": route, "count": count})

    def restart_worker(self, worker: str) -> CommandResult:
        return self._command("restart", {"worker": worker})

    def kill_worker(self, worker: str) -> CommandResult:
        return self._command("kill", {"worker": worker})

    def set_log_level(self, level: str, worker: str | None = None) -> CommandResult:
        return self._command("set_log_level", {"level": level, "worker": worker})

    def save_config(self) -> CommandResult:
        return self._command("save", {}, timeout=60.0)

    def reload_config(self) -> CommandResult:
        return self._command("reload", {}, timeout=60.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the fleet (operator only) and wait until it is gone; raises RemoteError when refused."""
        try:
            answer = self.connection.call("stop", {"timeout": timeout}, timeout=timeout + 15)
        except FleetGone:
            return
        if not answer.get("stopped"):
            self.connection.closed.wait(timeout + 15)  # a hosted fleet drains, exits and closes the socket
