"""Pilot tests of the TUI against the real engine: real Mosquitto, real worker processes."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from rmqtui.engine.config import load
from rmqtui.engine.snapshot import WorkerState
from rmqtui.engine.supervisor import Fleet
from rmqtui.ui.app import FleetApp
from rmqtui.testing import Project, publish
from tests.ui import waiting

ROUTE = {"name": "work", "topic": "jobs/{id}", "handler": "handlers.rec:record", "shared": True, "workers": 2,
         "qos": 1}


async def until(pilot, predicate, timeout=20.0, what=""):
    """Let the app run until ``predicate()`` holds; fail past ``timeout`` with the fleet's last words."""
    if not await waiting.until(pilot, predicate, timeout):
        fleet = pilot.app.fleet
        pytest.fail(f"timed out waiting for {what or predicate}: "
                    f"{[(r.source, r.message[:300]) for r in fleet.logs_since(0)][-8:]} "
                    f"{[(w.state, w.reason) for w in fleet.snapshot().workers]}")


def live_pids(fleet, route="work"):
    return {w.pid for w in fleet.snapshot().workers_of(route) if w.pid and w.state is WorkerState.SUBSCRIBED}


@pytest.fixture
def fleet(tmp_path):
    project = Project(tmp_path)
    fleet = Fleet(load(project.write([ROUTE])), sample_interval=0.3)
    fleet.start()
    yield fleet
    fleet.stop(timeout=10)


async def test_plus_adds_a_process_and_minus_drains_one(fleet):
    app = FleetApp(fleet, refresh=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(live_pids(fleet)) == 2, what="2 workers")
        app.routes_table.focus()
        await pilot.press("plus")
        await until(pilot, lambda: len(live_pids(fleet)) == 3, what="a third worker process")
        assert all(psutil.pid_exists(p) for p in live_pids(fleet))
        await until(pilot, lambda: len(app.workers_table.row_keys) == 3, what="the new row")
        await pilot.press("minus")
        await until(pilot, lambda: len(live_pids(fleet)) == 2 and fleet.snapshot().route("work").running == 2,
                    what="one worker drained")
        await until(pilot, lambda: len(app.workers_table.row_keys) == 2, what="the row to go")


async def test_d_shows_debug_records_of_the_selected_worker(fleet):
    app = FleetApp(fleet, refresh=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: len(live_pids(fleet)) == 2)
        await until(pilot, lambda: len(app.workers_table.row_keys) == 2)
        app.workers_table.focus()
        await pilot.pause()
        selected = app.selected_worker
        assert selected is not None
        await pilot.press("d")
        await until(pilot, lambda: fleet.snapshot().workers[selected.slot].debug, what="debug on")
        await asyncio.to_thread(publish, fleet, lambda i: f"jobs/{i}", 20)

        def debug_lines():
            text = [strip.text for strip in app.log_pane.lines]
            return [t for t in text if "DEBUG" in t and selected.id in t]

        await until(pilot, debug_lines, what="debug records in the log pane")
        other = [w.id for w in fleet.snapshot().workers if w.id != selected.id][0]
        assert not [s.text for s in app.log_pane.lines if "DEBUG" in s.text and other in s.text]


async def test_w_writes_counts_that_load_back(fleet):
    app = FleetApp(fleet, refresh=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(live_pids(fleet)) == 2)
        app.routes_table.focus()
        await pilot.press("plus")
        await until(pilot, lambda: fleet.snapshot().route("work").desired == 3)
        await pilot.press("w")
        path = fleet.config.path
        await until(pilot, lambda: path.with_name(path.name + ".bak").exists(), what="the backup")
        assert load(path).route("work").workers == 3


async def test_q_drains_and_leaves_no_process(fleet):
    app = FleetApp(fleet, refresh=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(live_pids(fleet)) == 2)
        pids = live_pids(fleet)
        await pilot.press("q")
        # q stops the fleet first and exits the app only once the stop returned
        await until(pilot, lambda: not app.is_running, what="the app to exit after stopping the fleet")
    assert app.return_code == 0, app.return_code
    assert any(r.message == "fleet stopped" for r in fleet.logs_since(0)), "the app exited before the fleet stopped"
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    me = psutil.Process()
    deadline = time.monotonic() + 10
    while [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]:
        assert time.monotonic() < deadline, "a child process outlived the TUI"
        await asyncio.sleep(0.1)
    assert fleet.snapshot().stopping
