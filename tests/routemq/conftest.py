"""Fixtures for RouteMQ projects under rmqtui: the real routemq package, real Mosquitto, real workers."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from rmqtui.engine.broker import free_port
from tests.engine.conftest import start_fleet, wait_for  # noqa: F401 - fixtures and helpers shared

pytest.importorskip("routemq", reason="RouteMQ is not installed: pip install 'rmqtui[routemq]'")

PROJECT = Path(__file__).resolve().parent / "project"


def copy_project(target: Path) -> Path:
    """A fresh copy of the test RouteMQ project (without outputs of earlier runs)."""
    shutil.copytree(PROJECT, target, ignore=shutil.ignore_patterns("out", "__pycache__", "routemq.toml",
                                                                   "rmqtui_routemq.py"))
    return target


def write_files(root: Path, files: dict[str, str]) -> Path:
    """Write a small project: {relative path: source}; packages get their __init__.py."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    for init in ("app/__init__.py", "app/routers/__init__.py"):
        if not (root / init).exists() and (root / init).parent.exists():
            (root / init).write_text("")
    return root


def set_port(config: Path, **fleet: object) -> int:
    """Give the generated routemq.toml a free broker port and test-friendly fleet settings."""
    port = free_port()
    text = config.read_text().replace("port = 1883", f"port = {port}")
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in fleet.items())
    text = text.replace("[fleet]\n", "[fleet]\n" + extra, 1)
    config.write_text(text)
    return port


def records(root: Path) -> list[dict]:
    """Everything the test project's handlers recorded, over all processes."""
    out = []
    for f in sorted((root / "out").glob("*.jsonl")):
        out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")
