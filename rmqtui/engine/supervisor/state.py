"""The files a fleet keeps: the runtime state file (pid, broker address) and the slot layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import runtime


def runtime_state_path(config_path: Path | str) -> Path:
    """Where a running fleet announces its pid and broker address for ``rmqtui load`` and friends."""
    return runtime.fleet_runtime_dir(config_path) / "state.json"


def write_runtime_state(config_path: Path, host: str, port: int, **extra) -> Path:
    """Announce this process as the fleet of ``config_path`` (0600, atomic); returns the file's path."""
    path = runtime_state_path(config_path)
    runtime.write_private(path, json.dumps(
        {"pid": os.getpid(), "host": host, "port": port, "config": str(Path(config_path).resolve()), **extra}))
    return path


def remove_runtime_state(path: Path | None) -> None:
    """Remove the state file at ``path`` if this process wrote it (never another fleet's)."""
    if path is None:
        return
    try:
        if int(json.loads(runtime.read_private(path))["pid"]) == os.getpid():
            path.unlink(missing_ok=True)
    except (OSError, ValueError, KeyError, TypeError, runtime.RuntimePathError):
        pass


def clean_stale_runtime(config_path: Path) -> int | None:
    """Drop the state file a killed supervisor left; returns that supervisor's pid when it was stale."""
    path = runtime_state_path(config_path)
    try:
        pid = int(json.loads(runtime.read_private(path))["pid"])
    except (OSError, ValueError, KeyError, TypeError, runtime.RuntimePathError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
        return None  # still alive: not ours to clean (the control socket reports "already running")
    except ProcessLookupError:
        pass
    except PermissionError:
        return None
    path.unlink(missing_ok=True)
    return pid


def read_layout(state_dir: Path) -> dict[str, list[int]]:
    """The slot indices per route the last run recorded (empty when there is no record)."""
    try:
        data = json.loads(runtime.read_private(state_dir / "slots.json"))
        return {str(k): [int(i) for i in v] for k, v in data.items()}
    except (OSError, ValueError, AttributeError, TypeError, runtime.RuntimePathError):
        return {}


def write_layout(state_dir: Path, layout: dict[str, list[int]]) -> None:
    """Record the slot indices per route (0600, atomic)."""
    runtime.write_private(state_dir / "slots.json", json.dumps(layout))
