"""The audit log: one JSON line per change asked over the control socket, with who asked."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from pathlib import Path

_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a unix socket, from the kernel."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    return _CRED.unpack(raw)


class AuditLog:
    """Appends JSON lines to ``path`` (0600, never through a symlink); safe from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, *, peer: tuple[int, int, int], role: str, method: str, params: dict, result: dict) -> None:
        """Record one request: time, peer pid/uid/gid, role, method, params, result."""
        pid, uid, gid = peer
        line = json.dumps({"time": round(time.time(), 3), "uid": uid, "gid": gid, "pid": pid, "role": role,
                           "method": method, "params": params, "result": result}, separators=(",", ":"))
        data = (line + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)  # one write per line: O_APPEND keeps lines whole
            finally:
                os.close(fd)
