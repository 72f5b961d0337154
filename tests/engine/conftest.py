"""Fixtures for live engine tests: real Mosquitto on a free loopback port, real worker processes."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from rmqtui.engine.config import load
from rmqtui.engine.supervisor import Fleet
from rmqtui.testing import Project, publish, wait_for  # noqa: F401 - re-exported for the tests


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def no_children_left() -> None:
    """Wait until every child process of the test process has exited."""
    me = psutil.Process()
    wait_for(lambda: not [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE],
             timeout=10, what="every child process to exit")


@pytest.fixture
def start_fleet():
    """Start a Fleet on a config path; every fleet is stopped at teardown, and no process may outlive it."""
    fleets: list[Fleet] = []

    def _start(path: Path, **kwargs) -> Fleet:
        fleet = Fleet(load(path), **kwargs)
        fleet.start()
        fleets.append(fleet)
        return fleet

    yield _start
    for fleet in fleets:
        fleet.stop(timeout=10)
    no_children_left()


def live_workers(fleet: Fleet, route: str | None = None) -> list:
    snap = fleet.snapshot()
    return [w for w in snap.workers if w.pid and (route is None or w.route == route)]
