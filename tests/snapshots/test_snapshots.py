"""What the operator sees, at 80x24 and 160x48, for each FixedFleet scenario and the main dialogs."""

from __future__ import annotations

import pytest

from rmqtui.demo import FixedFleet
from rmqtui.ui.app import FleetApp

SMALL = (80, 24)
LARGE = (160, 48)
SIZES = pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])


def fleet_app(scenario: str = "normal") -> FleetApp:
    return FleetApp(FixedFleet(scenario))


class TestMainScreen:
    @SIZES
    def test_normal_fleet(self, snap_compare, size) -> None:
        assert snap_compare(fleet_app("normal"), terminal_size=size)

    @SIZES
    def test_all_routes(self, snap_compare, size) -> None:
        assert snap_compare(fleet_app("normal"), press=["a"], terminal_size=size)

    @SIZES
    def test_crashloop_worker_with_reason(self, snap_compare, size) -> None:
        # Select the telemetry route, then the crash-looping worker: its reason shows under the pane.
        assert snap_compare(fleet_app("crashloop"), press=["shift+tab", "down", "enter", "down"], terminal_size=size)

    @SIZES
    def test_debug_on(self, snap_compare, size) -> None:
        assert snap_compare(fleet_app("debug"), terminal_size=size)

    def test_filtered_workers(self, snap_compare) -> None:
        assert snap_compare(fleet_app("normal"), press=["a", "slash", *"tele", "enter"], terminal_size=SMALL)


class TestCommands:
    @SIZES
    def test_refused_add_on_non_shared_route(self, snap_compare, size) -> None:
        assert snap_compare(fleet_app("normal"), press=["shift+tab", "down", "down", "plus"], terminal_size=size)

    def test_worker_debug_and_added_worker(self, snap_compare) -> None:
        assert snap_compare(fleet_app("normal"), press=["d", "plus"], terminal_size=LARGE)

    def test_kill_confirmation(self, snap_compare) -> None:
        assert snap_compare(fleet_app("normal"), press=["down", "x"], terminal_size=SMALL)


class TestDialogs:
    @SIZES
    def test_help(self, snap_compare, size) -> None:
        assert snap_compare(fleet_app("normal"), press=["question_mark"], terminal_size=size)
