"""``rmqtui init``: write a starter ``routemq.toml`` and example handlers into a directory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# Listed rather than globbed so stray files (caches, editor backups) never get copied.
STARTER_FILES = (
    "routemq.toml",
    "app_routes/__init__.py",
    "app_routes/sensors.py",
    "app_routes/telemetry.py",
    "app_routes/alerts.py",
)


def init_project(directory: Path, on_skip: Callable[[Path], None] | None = None) -> list[Path]:
    """Write the starter files into ``directory``; returns the paths written.

    An existing file is never overwritten: it is skipped, logged and passed to
    ``on_skip`` (so the CLI can list it).
    """
    directory = Path(directory)
    written: list[Path] = []
    for name in STARTER_FILES:
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        data = (TEMPLATES / name).read_bytes()
        try:
            # "x" creates or fails atomically: no window in which a file appearing is overwritten.
            with open(target, "xb") as f:
                f.write(data)
        except FileExistsError:
            log.info("kept existing %s", target)
            if on_skip is not None:
                on_skip(target)
            continue
        written.append(target)
    return written
