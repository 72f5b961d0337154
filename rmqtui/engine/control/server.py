"""The control socket: any :class:`~rmqtui.engine.api.FleetControl` served over unix sockets.

Newline-delimited JSON in the JSON-RPC 2.0 shape (``socat - UNIX-CONNECT:…``
is a client).  The role comes from the socket a client connected to, which the
file mode guards: the operator socket may change the fleet, the read-only one
may only look.  Every change is appended to the audit log with the caller's
uid and pid from ``SO_PEERCRED``.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import threading
import time
from pathlib import Path
from typing import Callable

from ... import __version__
from ..api import CommandResult, FleetControl
from . import paths
from .audit import AuditLog, peer_credentials
from .codec import dumps, record_to_dict, result_to_dict, snapshot_to_dict
from .delta import DeltaEncoder
from .dispatch import ANY_ROLE, COMMANDS, RequestError, call_command

OPS_METHODS = frozenset({"unpin", "adopt"})  # operator methods of the OpsServices next to the fleet
from .session import STREAMS, Session

MAX_LINE = 1 << 20
MAX_CLIENTS = 64
PUMP_INTERVAL = 0.25


class AlreadyRunning(Exception):
    """A fleet already answers on this config's control socket."""

    def __init__(self, info: dict) -> None:
        self.info = info
        self.pid = (info.get("fleet") or {}).get("pid")
        super().__init__(f"already running (pid {self.pid}); use rmqtui attach / rmqtui ctl")


class ControlServer:
    """Serves ``fleet`` on the operator and read-only sockets of ``config_path``.

    ``stop`` is what the ``stop`` method does; by default ``fleet.stop()`` (blocking),
    a host process passes a callable that makes its own main loop drain and exit.
    ``group`` (a group name or gid) makes the read-only socket 0660 for that group.
    """

    def __init__(self, fleet: FleetControl, config_path: Path | str, *, audit_dir: Path,
                 stop: Callable[[], None] | None = None, group: str | int | None = None) -> None:
        self.fleet = fleet
        self.config_path = Path(config_path).resolve()
        self.audit = AuditLog(Path(audit_dir) / "audit.log")
        self._stop_hook = stop
        self.ops = None  # the fleet's OpsServices (metrics, autoscale), when the front end set them
        self._gid = _group_id(group) if group not in (None, "") else None
        self.sessions: list[Session] = []
        self._lock = threading.Lock()
        self._listeners: dict[socket.socket, tuple[str, Path, int]] = {}
        self._halt = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._threads: list[threading.Thread] = []
        self.log_seq = 0
        self._last_states: dict[str, str] | None = None
        self._next_event_snapshot = 0.0

    @property
    def socket_paths(self) -> dict[str, Path]:
        """Role -> socket path, of the sockets this server listens on."""
        return {role: path for role, path, _ in self._listeners.values()}

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind both sockets (replacing stale ones) and start serving.

        Raises :class:`AlreadyRunning` when a fleet answers on the operator socket,
        and ``OSError``/``RuntimePathError`` when a socket cannot be created.
        """
        operator = paths.socket_path(self.config_path, paths.OPERATOR)
        reader = paths.socket_path(self.config_path, paths.READ_ONLY, group=self._gid is not None)
        try:
            self._bind(operator, paths.OPERATOR, None)
            self._bind(reader, paths.READ_ONLY, self._gid)
        except BaseException:
            self._unbind()
            raise
        for target, name in ((self._accept_loop, "rmqtui-control-accept"), (self._pump_loop, "rmqtui-control-pump")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _bind(self, path: Path, role: str, gid: int | None) -> None:
        if os.path.lexists(path):
            info = paths.probe(path)
            if info is not None:
                raise AlreadyRunning(info)
            paths.remove_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no window in which others could connect
        try:
            sock.bind(str(path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        if gid is not None:
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)
        sock.listen(16)
        self._listeners[sock] = (role, path, os.stat(path).st_ino)

    def _unbind(self) -> None:
        for sock, (_, path, ino) in list(self._listeners.items()):
            sock.close()
            try:
                if os.lstat(path).st_ino == ino:  # never remove a socket a newer fleet put there
                    os.unlink(path)
            except OSError:
                pass
        self._listeners.clear()

    def close(self) -> None:
        """Stop serving: remove the sockets and disconnect every client."""
        if self._halt.is_set():
            return
        self._halt.set()
        os.write(self._wake_w, b"x")
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self._unbind()
        with self._lock:
            sessions = list(self.sessions)
        for session in sessions:
            session.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- accepting ----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        for sock in self._listeners:
            sel.register(sock, selectors.EVENT_READ)
        try:
            while not self._halt.is_set():
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r or self._halt.is_set():
                        return
                    self._accept(key.fileobj)
        finally:
            sel.close()

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        role = self._listeners[listener][0]
        try:
            peer = peer_credentials(sock)
        except OSError:  # gone already
            sock.close()
            return
        with self._lock:
            self.sessions = [s for s in self.sessions if not s.closed]
            crowded = len(self.sessions) >= MAX_CLIENTS
        # the 0600 mode already keeps others out; checking the uid as well costs nothing
        foreign = role == paths.OPERATOR and peer[1] not in (os.geteuid(), 0)
        if crowded or foreign:
            sock.close()
            return
        session = Session(sock, role, peer)
        with self._lock:
            self.sessions.append(session)
        session.start()
        threading.Thread(target=self._read_loop, args=(session,), name="rmqtui-control-reader", daemon=True).start()

    # -- requests -----------------------------------------------------------------------------

    def _read_loop(self, session: Session) -> None:
        try:
            with session.sock.makefile("rb") as stream:
                while not session.closed:
                    line = stream.readline(MAX_LINE)
                    if not line:
                        break
                    if not line.endswith(b"\n") and len(line) >= MAX_LINE:
                        session.reply(_error(None, -32600, f"request longer than {MAX_LINE} bytes"))
                        break
                    if line.strip():
                        self._handle(session, line)
        except OSError:
            pass
        finally:
            session.finish()
            with self._lock:
                if session in self.sessions:
                    self.sessions.remove(session)

    def _handle(self, session: Session, line: bytes) -> None:
        try:
            request = json.loads(line)
        except ValueError as exc:
            session.reply(_error(None, -32700, f"not JSON: {exc}"))
            return
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            session.reply(_error(None, -32600, "a request is an object with a string 'method'"))
            return
        rid, method = request.get("id"), request["method"]
        params = request.get("params") or {}
        try:
            if not isinstance(params, dict):
                raise RequestError(-32602, "params must be an object")
            result = self._dispatch(session, method, params)
        except RequestError as exc:
            if rid is not None:
                session.reply(_error(rid, exc.code, str(exc)))
            return
        except Exception as exc:  # the fleet raised: the caller hears it, the server keeps serving
            if rid is not None:
                session.reply(_error(rid, -32603, f"{method} failed: {type(exc).__name__}: {exc}"))
            return
        if rid is not None:
            session.reply({"jsonrpc": "2.0", "id": rid, "result": result})

    def _dispatch(self, session: Session, method: str, params: dict) -> dict:
        if method == "hello":
            return self._hello(session)
        if method == "snapshot":
            return {"snapshot": snapshot_to_dict(self.fleet.snapshot(), rows=params.get("rows") is True)}
        if method == "logs":
            since = _int(params, "since", 0)
            worker = params.get("worker")
            records = [record_to_dict(r) for r in self.fleet.logs_since(since)
                       if worker is None or r.source == worker]
            return {"records": records[-_int(params, "limit", 5000):]}
        if method in ("subscribe", "unsubscribe"):
            return self._subscribe(session, method, params)
        if method == "metrics":
            if self.ops is None:
                raise RequestError(-32601, "this fleet serves no metrics")
            return {"text": self.ops.metrics_text()}
        if method not in COMMANDS and method not in OPS_METHODS:
            raise RequestError(-32601, f"no method {method!r}; methods: {', '.join(sorted(ANY_ROLE | set(COMMANDS) | OPS_METHODS))}")
        if session.role != paths.OPERATOR:
            message = f"this is a read-only connection; {method} needs the operator socket"
            self._audit(session, method, params, {"ok": False, "message": message})
            raise RequestError(-32001, message)
        if method in OPS_METHODS:  # served next to the fleet by its OpsServices (autoscaler, presence)
            name = params.get("route" if method == "unpin" else "host")
            if not isinstance(name, str):
                raise RequestError(-32602, f"{method} needs a {'route' if method == 'unpin' else 'host'} name")
            if self.ops is None:
                result = result_to_dict(CommandResult.refused(f"this fleet serves no {method}"))
            elif method == "unpin":
                result = result_to_dict(self.ops.unpin(name))
            else:
                result = result_to_dict(self.ops.adopt(name, bool(params.get("force"))))
            self._audit(session, method, params, result)
            return result
        if method == "stop" and self._stop_hook is not None:
            result = {"ok": True, "message": "stopping: draining every worker"}
            self._audit(session, method, params, result)  # before: the process is about to exit
            self._stop_hook()
            return dict(result, stopped=False)
        result = result_to_dict(call_command(self.fleet, method, params))
        self._audit(session, method, params, result)
        result["stopped"] = method == "stop"
        if "snapshot" in session.streams and method != "stop":
            # the reply follows a snapshot that already shows the command's immediate effect
            snap = self.fleet.snapshot()
            self._note_states(snap)
            session.send_snapshot_now(snap if session.delta is not None
                                      else self._snapshot_line(snap, rows=session.rows))
        return result

    def _hello(self, session: Session) -> dict:
        allowed = sorted(ANY_ROLE | (set(COMMANDS) | OPS_METHODS if session.role == paths.OPERATOR else set()))
        return {"protocol": paths.PROTOCOL_VERSION, "server": f"rmqtui {__version__}", "role": session.role,
                "fleet": {"pid": os.getpid(), "config": str(self.config_path), "hostname": socket.gethostname()},
                "capabilities": allowed + [f"stream:{s}" for s in STREAMS]}

    def _subscribe(self, session: Session, method: str, params: dict) -> dict:
        streams = params.get("streams", list(STREAMS))
        if not isinstance(streams, list) or not set(streams) <= set(STREAMS):
            raise RequestError(-32602, f"streams must be a list of {', '.join(STREAMS)}")
        if method == "unsubscribe":
            session.streams -= set(streams)
            return {"streams": sorted(session.streams)}
        interval = params.get("interval", 1.0)
        if not isinstance(interval, (int, float)) or isinstance(interval, bool) or not 0.1 <= interval <= 3600:
            raise RequestError(-32602, "interval must be a number of seconds between 0.1 and 3600")
        worker = params.get("worker")
        if worker is not None and not isinstance(worker, str):
            raise RequestError(-32602, "worker must be a worker id such as route/0")
        session.interval = float(interval)
        session.rows = params.get("rows") is True  # workers as rows of values (see codec.snapshot_to_dict)
        # only the changed workers (see delta.py); every subscribe starts again with a full snapshot
        session.delta = DeltaEncoder() if params.get("delta") is True else None
        session.log_worker = worker
        session.next_snapshot = 0.0
        session.streams |= set(streams)
        return {"streams": sorted(session.streams), "log_seq": self.log_seq}

    def _audit(self, session: Session, method: str, params: dict, result: dict) -> None:
        try:
            self.audit.append(peer=session.peer, role=session.role, method=method, params=params, result=result)
        except OSError as exc:  # the change happened; losing its audit line must be visible, not fatal
            result["message"] = f"{result['message']} (audit log not written: {exc.strerror})"
        event = {"kind": "command", "method": method, "params": params, "ok": result["ok"],
                 "message": result["message"], "uid": session.peer[1], "pid": session.peer[0]}
        for s in self._subscribers("event"):
            s.offer_event(dict(event))

    # -- streams ------------------------------------------------------------------------------

    def _subscribers(self, stream: str) -> list[Session]:
        with self._lock:
            return [s for s in self.sessions if stream in s.streams and not s.closed]

    @staticmethod
    def _snapshot_line(snap, *, rows: bool = False) -> bytes:
        return dumps({"jsonrpc": "2.0", "method": "snapshot",
                      "params": {"snapshot": snapshot_to_dict(snap, rows=rows)}})

    def _pump_loop(self) -> None:
        while not self._halt.wait(PUMP_INTERVAL):
            try:
                self._pump(time.monotonic())
            except Exception as exc:  # reported to subscribers of events; the pump keeps going
                for s in self._subscribers("event"):
                    s.offer_event({"kind": "error", "message": f"control pump: {type(exc).__name__}: {exc}"})

    def _pump(self, now: float) -> None:
        records = self.fleet.logs_since(self.log_seq)
        if records:
            self.log_seq = records[-1].seq
            listeners = self._subscribers("log")
            if listeners:
                batch = [record_to_dict(r) for r in records]
                for s in listeners:
                    s.offer_logs(batch)
        due = [s for s in self._subscribers("snapshot") if now >= s.next_snapshot]
        watching = self._subscribers("event") and now >= self._next_event_snapshot
        if due or watching:
            snap = self.fleet.snapshot()
            self._note_states(snap)
            self._next_event_snapshot = now + 1.0
            lines: dict[bool, bytes] = {}  # one encoding per form asked for, shared by the sessions
            for s in due:
                s.next_snapshot = now + s.interval
                if s.delta is not None:  # encoded by its writer, against what it wrote last
                    s.offer_snapshot(snap)
                    continue
                if s.rows not in lines:
                    lines[s.rows] = self._snapshot_line(snap, rows=s.rows)
                s.offer_snapshot(lines[s.rows])

    def _note_states(self, snap) -> None:
        states = {w.id: w.state.value for w in snap.workers}
        old, self._last_states = self._last_states, states
        if old is None:
            return
        events = [{"kind": "state", "worker": k, "from": old.get(k), "to": v} for k, v in states.items()
                  if old.get(k) != v]
        events += [{"kind": "state", "worker": k, "from": v, "to": None} for k, v in old.items() if k not in states]
        if events:
            for s in self._subscribers("event"):
                for e in events:
                    s.offer_event(dict(e))


def _error(rid, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _int(params: dict, key: str, default: int) -> int:
    value = params.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RequestError(-32602, f"{key} must be a non-negative integer")
    return value


def _group_id(group: str | int) -> int:
    import grp

    if isinstance(group, int) or str(group).isdigit():
        return int(group)
    try:
        return grp.getgrnam(str(group)).gr_gid
    except KeyError:
        raise ValueError(f"no group called {group!r} for the read-only control socket; "
                         f"check RMQTUI_CONTROL_GROUP") from None
