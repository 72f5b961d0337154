"""Fixtures for control-plane tests: private runtime/state directories, and fleets served on a socket."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rmqtui.engine import runtime  # noqa: E402
from rmqtui.engine.control import ControlServer, RemoteFleet  # noqa: E402


@pytest.fixture
def dirs(monkeypatch):
    """Short private runtime and state roots (a unix socket path must stay under 108 bytes)."""
    base = Path(tempfile.mkdtemp(prefix="rq"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(base / "run"))
    monkeypatch.setenv("STATE_DIRECTORY", str(base / "state"))
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("RMQTUI_CONTROL_GROUP", raising=False)
    yield base
    shutil.rmtree(base, ignore_errors=True)


class Served:
    """Serves fleets on sockets and hands out RemoteFleets; closes everything at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: list[ControlServer] = []
        self.remotes: list[RemoteFleet] = []

    def serve(self, fleet, config_path: Path | None = None, **kwargs) -> ControlServer:
        path = config_path or self.base / f"p{len(self.servers)}" / "routemq.toml"
        server = ControlServer(fleet, path, audit_dir=runtime.fleet_state_dir(path), **kwargs)
        server.start()
        self.servers.append(server)
        return server

    def remote(self, server: ControlServer, *, read_only: bool = False, interval: float = 0.1) -> RemoteFleet:
        remote = RemoteFleet(server.config_path, read_only=read_only, interval=interval)
        self.remotes.append(remote)
        return remote

    def attach(self, fleet, **kwargs) -> RemoteFleet:
        """``fleet`` served on a new socket, as a RemoteFleet."""
        return self.remote(self.serve(fleet), **kwargs)

    def close(self) -> None:
        for remote in self.remotes:
            remote.close()
        for server in self.servers:
            server.close()


@pytest.fixture
def served(dirs):
    served = Served(dirs)
    yield served
    served.close()
