"""The worker detail screen and a sorted workers table, at 80x24 and 160x48, on a scripted FleetControl."""

from __future__ import annotations

import pytest

from rmqtui.ui.app import FleetApp
from tests.tui_fleet import ScriptedFleet

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


def scripted_app() -> tuple[FleetApp, ScriptedFleet]:
    fleet = ScriptedFleet()
    # No timer refresh during the test: every figure on screen comes from the history recorded below.
    return FleetApp(fleet, refresh=3600), fleet


def with_history(app: FleetApp, fleet: ScriptedFleet):
    async def run_before(pilot) -> None:
        for t in range(0, 301, 2):
            app.history.record(fleet.snapshot_at(float(t)))
        fleet.log("ERROR", "orders/0", "handler raised ValueError: order 4411 has no customer")
        app.refresh_fleet()
        await pilot.pause()

    return run_before


@SIZES
def test_worker_detail(snap_compare, size) -> None:
    app, fleet = scripted_app()
    assert snap_compare(app, press=["enter"], run_before=with_history(app, fleet), terminal_size=size)


@SIZES
def test_workers_sorted_by_cpu(snap_compare, size) -> None:
    app, fleet = scripted_app()
    # all routes, then > six times: pid, state, done, msg/s, fail, cpu% at 80 and 160 columns alike
    keys = ["a", *["greater_than_sign"] * 6]
    assert snap_compare(app, press=keys, run_before=with_history(app, fleet), terminal_size=size)


def test_marked_workers_and_kill_confirmation(snap_compare) -> None:
    app, fleet = scripted_app()
    assert snap_compare(app, press=["a", "space", "down", "space", "x"], run_before=with_history(app, fleet),
                        terminal_size=(80, 24))


def test_60x20(snap_compare) -> None:
    app, fleet = scripted_app()
    assert snap_compare(app, run_before=with_history(app, fleet), terminal_size=(60, 20))
