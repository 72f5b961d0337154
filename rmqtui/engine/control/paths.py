"""Where the control sockets of a config live, and whether a fleet answers on them.

The operator socket and the read-only socket sit in the fleet's 0700 runtime
directory.  A read-only socket for a group cannot live there (the group could
not traverse the directory), so with a group it sits next to that directory,
in the runtime root, which must then be group-traversable (systemd's
``RuntimeDirectoryMode=0750``).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from .. import runtime

OPERATOR = "operator"
READ_ONLY = "read-only"
PROTOCOL_VERSION = 1

#: Exit status of ``rmqtui ctl`` when no fleet answers for the config.
EXIT_NO_FLEET = 3


def socket_path(config_path: Path | str, role: str, *, group: bool = False, create: bool = True) -> Path:
    """The socket of ``role`` for the fleet of ``config_path``.

    With ``create`` (the server) the fleet's runtime directory is created and checked;
    a client only looks, so asking about a config with no fleet leaves nothing behind.
    """
    key = runtime.config_key(config_path)
    if role == READ_ONLY and group:
        return runtime.runtime_root() / f"{key}.read.sock"
    directory = runtime.fleet_runtime_dir(config_path) if create else runtime.runtime_root() / key
    return directory / ("control.sock" if role == OPERATOR else "read.sock")


def read_only_candidates(config_path: Path | str) -> list[Path]:
    """Where a read-only client looks: the private read-only socket, then the group one."""
    return [socket_path(config_path, READ_ONLY, create=False), socket_path(config_path, READ_ONLY, group=True)]


def probe(path: Path, timeout: float = 2.0) -> dict | None:
    """Say hello on ``path``: the server's answer, or None when nothing answers (no file, stale file)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b'{"jsonrpc":"2.0","id":0,"method":"hello","params":{}}\n')
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
        answer = json.loads(buf)
        result = answer.get("result")
        return result if isinstance(result, dict) else None
    except (OSError, ValueError):
        return None


def remove_stale(path: Path) -> None:
    """Remove a socket file nobody answers on (a fleet that was killed leaves one behind)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    import stat

    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        raise runtime.RuntimePathError(f"{path} exists and is not a socket of yours; remove it and start again")
    os.unlink(path)
