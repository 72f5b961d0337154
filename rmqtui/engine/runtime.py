"""Where a fleet keeps its files: a private runtime directory and a persistent state directory.

Resolved the way tmux and systemd services do it, and checked the way git and
tmux check theirs: a directory that is a symlink, belongs to another user or
can be written by others is refused with a message that says what to do.

- runtime (sockets, the state file, anything that dies with the fleet):
  ``$RUNTIME_DIRECTORY``, else ``$XDG_RUNTIME_DIR/rmqtui``, else ``/tmp/rmqtui-<uid>``;
- state (broker sessions, logs, audit; survives a stop and a reboot):
  ``$STATE_DIRECTORY``, else ``$XDG_STATE_HOME/rmqtui``, else ``~/.local/state/rmqtui``.

Each config gets its own 0700 sub-directory of both, named from the config's
absolute path, so two projects never share files and one project never has two.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path


class RuntimePathError(Exception):
    """A runtime or state path is unsafe or unusable; the message names it and says how to fix it."""


def _first_env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "")
        # systemd may pass several directories separated by ':'; the first is ours
        if value:
            return value.split(":")[0]
    return None


def runtime_root() -> Path:
    """The per-user runtime directory (created and checked)."""
    explicit = _first_env("RUNTIME_DIRECTORY")
    if explicit:
        return ensure_private_dir(Path(explicit), strict=False)
    xdg = _first_env("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return ensure_private_dir(Path(xdg) / "rmqtui")
    return ensure_private_dir(Path(tempfile.gettempdir()) / f"rmqtui-{os.geteuid()}")


def state_root() -> Path:
    """The per-user persistent state directory (created and checked)."""
    explicit = _first_env("STATE_DIRECTORY")
    if explicit:
        return ensure_private_dir(Path(explicit), strict=False)
    xdg = _first_env("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return ensure_private_dir(base / "rmqtui")


def config_key(config_path: Path | str) -> str:
    """A short, stable, file-name-safe name for a config: its directory's name plus a hash of its path."""
    resolved = Path(config_path).resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", resolved.parent.name)[:24] or "root"
    return f"{stem}-{digest}"


def fleet_runtime_dir(config_path: Path | str) -> Path:
    """The 0700 runtime directory of the fleet of ``config_path`` (control sockets, state file)."""
    return ensure_private_dir(runtime_root() / config_key(config_path))


def broker_socket(config_path: Path | str) -> Path:
    """The embedded broker's private socket for the fleet of ``config_path``: only its user (and root)
    can reach it, through the 0700 runtime directory that holds it."""
    return fleet_runtime_dir(config_path) / "broker.sock"


def fleet_state_dir(config_path: Path | str) -> Path:
    """The 0700 persistent directory of the fleet of ``config_path`` (broker data, logs, audit)."""
    return ensure_private_dir(state_root() / config_key(config_path))


def ensure_private_dir(path: Path, *, strict: bool = True) -> Path:
    """Create ``path`` as a 0700 directory, or check that the existing one is safe to use.

    Refused: a symlink, not a directory, owned by another user, writable by group or others,
    and with ``strict`` (directories rmqtui names itself) any group or other access at all.
    """
    path = Path(path)
    old_umask = os.umask(0o077)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RuntimePathError(f"{path}: cannot create the directory ({exc.strerror}); "
                               f"set RUNTIME_DIRECTORY/STATE_DIRECTORY to a directory you own") from None
    finally:
        os.umask(old_umask)
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise RuntimePathError(f"{path}: cannot read it ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise RuntimePathError(f"{path} is a symlink, which another user could have planted; "
                               f"remove it (rm {path}) and start again")
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimePathError(f"{path} exists and is not a directory; remove it and start again")
    if st.st_uid != os.geteuid():
        raise RuntimePathError(f"{path} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}); "
                               f"another user may have created it: remove it as that user or root, or set "
                               f"RUNTIME_DIRECTORY/STATE_DIRECTORY to a directory you own")
    if strict and st.st_mode & 0o077 and not st.st_mode & 0o022:
        # ours and writable only by us, but readable by others: what rmqtui before 0.2 left in /tmp;
        # nobody else could have put anything in it, so closing it is safe
        os.chmod(path, 0o700)
        st = os.lstat(path)
    loose = st.st_mode & (0o077 if strict else 0o022)
    if loose:
        raise RuntimePathError(f"{path} is accessible to other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                               f"run: chmod 700 {path}")
    return path


def write_private(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600, never following a symlink at ``path``."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, path)  # rename replaces a planted symlink itself, never its target
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_private(path: Path, limit: int = 1 << 20) -> bytes:
    """Read a file rmqtui wrote itself: refused when it is a symlink, not ours, or other users can write it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise RuntimePathError(f"{path} is not a private file of yours; remove it and start again")
        return os.read(fd, limit)
    finally:
        os.close(fd)
