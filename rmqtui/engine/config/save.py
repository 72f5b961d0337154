"""Writing worker counts back into the user's own ``routemq.toml`` (the UI's ``w``).

tomlkit edits the document in place, so only the ``workers`` values change:
comments, order, spacing and quoting stay as the user wrote them.  The new
file keeps the old one's mode and owner; the previous version is kept as
``<name>.bak`` with the same mode.
"""

from __future__ import annotations

import codecs
import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from .errors import ConfigError
from .model import Config


def save_worker_counts(config: Config, counts: Mapping[str, int]) -> Path:
    """Write ``counts`` (route name → workers) into ``config.path``; returns the backup's path.

    The file is re-read so that edits made since loading survive; only each
    route's ``workers`` changes.  The new file replaces the old one atomically.
    """
    path = config.path.resolve()  # a symlinked config stays a symlink to the file we rewrite
    try:
        original = path.read_bytes()
        info = path.stat()
        bom = codecs.BOM_UTF8 if original.startswith(codecs.BOM_UTF8) else b""
        doc = tomlkit.parse(original[len(bom):].decode("utf-8"))
    except (OSError, UnicodeDecodeError, TOMLKitError) as e:
        raise ConfigError(path, f"cannot re-read the config to save worker counts: {e}",
                          "fix or restore the file, then save again") from e
    routes = doc.get("routes")
    if not isinstance(routes, list):
        raise ConfigError(path, "the file no longer has [[routes]] sections",
                          "restore the file, then save again", key="routes")
    index = {r.get("name"): i for i, r in enumerate(routes) if isinstance(r, dict)}
    for name, count in counts.items():
        if name not in index:
            raise ConfigError(path, f"route {name!r} is no longer in the file",
                              "reload the config or add the route back, then save again", key="routes")
        key = f"routes[{index[name]}].workers"
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ConfigError(path, f"cannot save {count!r} workers for route {name!r}",
                              "keep at least one worker per route (remove the route to stop it)", key=key)
        route = routes[index[name]]
        if count > 1 and route.get("shared", True) is False:
            raise ConfigError(path, f"route {name!r} is not shared, so it cannot have {count} workers",
                              "set shared = true on the route first", key=key)
        if route.get("workers", 1) != count:  # an absent key already means 1: leave the file alone
            route["workers"] = count
    data = bom + tomlkit.dumps(doc).encode("utf-8")
    tomllib.loads(data[len(bom):].decode("utf-8"))  # never write a file rmqtui could not read back
    backup = path.with_name(path.name + ".bak")
    atomic_write(backup, original, like=info)
    atomic_write(path, data, like=info)
    return backup


def atomic_write(path: Path, data: bytes, *, like: os.stat_result | None = None) -> None:
    """Write via a temp file in the same directory + fsync + rename.

    The file gets ``like``'s mode and owner (else the old file's, else 0644), so a
    0600 config never leaves a readable copy behind.
    """
    if like is None:
        try:
            like = path.stat()
        except FileNotFoundError:
            like = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if like is not None and (like.st_uid, like.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(f.fileno(), like.st_uid, like.st_gid)
                except PermissionError:
                    raise ConfigError(path, "cannot keep the file's owner when rewriting it",
                                      "save as the file's owner (or root), or edit the file by hand") from None
            os.fchmod(f.fileno(), like.st_mode & 0o7777 if like is not None else 0o644)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename is durable only once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
