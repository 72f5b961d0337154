"""Every key calls the right FleetControl command and its effect shows in the panes."""

from __future__ import annotations

import threading

import pytest
from rich.text import Text
from textual.command import CommandList

from rmqtui.demo import FixedFleet
from rmqtui.ui.app import FORCED_EXIT, FleetApp
from rmqtui.ui.dialogs import ConfirmScreen, HelpScreen
from tests.ui.waiting import until

SIZE = (80, 24)


def cell(table, row: str, column: str) -> str:
    value = table.get_cell(row, column)
    return value.plain if isinstance(value, Text) else str(value)


def log_text(app: FleetApp) -> str:
    return "\n".join(line.text for line in app.log_pane.lines)


def count_refreshes(app: FleetApp):
    """Count the app's refreshes (timer ticks and commands alike); returns the counter."""
    calls = []
    refresh = app.refresh_fleet

    def counted():
        calls.append(None)
        refresh()

    app.refresh_fleet = counted
    return lambda: len(calls)


def error_notes(app: FleetApp) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


def status_text(app: FleetApp) -> str:
    return str(app.query_one("#status").render())


async def test_plus_adds_a_worker_to_the_selected_route() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        assert "sensor-data/4" not in app.workers_table.row_keys
        await pilot.press("+")
        await pilot.pause()
        assert fleet.calls[-1] == ("add_worker", "sensor-data")
        assert cell(app.workers_table, "sensor-data/4", "state") == "starting"
        # run/want counts subscribed workers: the new one is still starting
        assert cell(app.routes_table, "sensor-data", "workers") == "3/4"


async def test_plus_on_the_non_shared_route_is_refused_and_says_why() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.routes_table.focus()
        await pilot.press("down", "down")
        assert app.selected_route == "alerts"
        await pilot.press("+")
        await pilot.pause()
        assert fleet.calls[-1] == ("add_worker", "alerts")
        assert app.workers_table.row_keys == ["alerts/0"]
        assert "refused: route 'alerts' is not shared" in log_text(app)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and "not shared" in errors[0].message


async def test_minus_drains_the_selected_worker() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down")
        await pilot.press("-")
        await pilot.pause()
        assert fleet.calls[-1] == ("remove_worker", "sensor-data", "sensor-data/1")
        assert cell(app.workers_table, "sensor-data/1", "state") == "draining"
        assert cell(app.routes_table, "sensor-data", "workers") == "2/2"


async def test_minus_from_the_routes_pane_drains_the_highest_slot() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        app.routes_table.focus()
        await pilot.press("down", "-")
        await pilot.pause()
        assert fleet.calls[-1] == ("remove_worker", "telemetry", None)
        assert cell(app.workers_table, "telemetry/1", "state") == "draining"


async def test_d_toggles_debug_of_the_selected_worker() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "d")
        await pilot.pause()
        assert fleet.calls[-1] == ("set_log_level", "DEBUG", "sensor-data/2")
        assert cell(app.workers_table, "sensor-data/2", "debug") == "D"
        assert cell(app.workers_table, "sensor-data/0", "debug") == ""
        await pilot.press("d")
        await pilot.pause()
        assert fleet.calls[-1] == ("set_log_level", "INFO", "sensor-data/2")
        assert cell(app.workers_table, "sensor-data/2", "debug") == ""


async def test_shift_d_toggles_debug_of_the_fleet() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        assert "log info" in status_text(app)
        await pilot.press("D")
        await pilot.pause()
        assert fleet.calls[-1] == ("set_log_level", "DEBUG", None)
        assert "log DEBUG" in status_text(app)
        assert all(cell(app.workers_table, key, "debug") == "D" for key in app.workers_table.row_keys)
        await pilot.press("D")
        await pilot.pause()
        assert fleet.calls[-1] == ("set_log_level", "INFO", None)
        assert "log info" in status_text(app)


async def test_r_restarts_the_selected_worker() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "r")
        await pilot.pause()
        assert fleet.calls[-1] == ("restart_worker", "sensor-data/2")
        assert cell(app.workers_table, "sensor-data/2", "state") == "starting"
        # the engine counts unexpected exits only: an operator's restart is not one
        assert cell(app.workers_table, "sensor-data/2", "restarts") == "1"


async def test_x_asks_first_and_kills_only_on_yes() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "sensor-data/1" in str(app.screen.question)
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert not any(c[0] == "kill_worker" for c in fleet.calls)
        assert cell(app.workers_table, "sensor-data/1", "state") == "subscribed"
        await pilot.press("x", "y")
        await pilot.pause()
        assert fleet.calls[-1] == ("kill_worker", "sensor-data/1")
        assert cell(app.workers_table, "sensor-data/1", "state") == "crashed"
        assert cell(app.workers_table, "sensor-data/1", "pid") == "–"


async def test_w_writes_the_config_in_a_thread_and_says_what_changed() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert fleet.calls[-1] == ("save_config",)
        assert "wrote worker counts to routemq.toml" in log_text(app), log_text(app)


async def test_shift_r_reloads_the_config_in_a_thread() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("R")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert fleet.calls[-1] == ("reload_config",)
        assert "reloaded: no live change" in log_text(app)


async def test_slash_filters_workers_by_state_and_escape_clears() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "slash", *"drain")
        await pilot.pause()
        assert app.workers_table.row_keys == ["sensor-data/3"]
        await pilot.press("escape")
        await pilot.pause()
        assert len(app.workers_table.row_keys) == 7
        assert app.workers_table.has_focus


async def test_slash_filters_workers_by_id_and_enter_keeps_it() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "slash", *"tele", "enter")
        await pilot.pause()
        assert app.workers_table.row_keys == ["telemetry/0", "telemetry/1"]
        assert "filter" in str(app.workers_table.border_title)
        app.refresh_fleet()
        assert app.workers_table.row_keys == ["telemetry/0", "telemetry/1"]


async def test_a_toggles_all_routes() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        assert app.workers_table.row_keys == [f"sensor-data/{i}" for i in range(4)]
        await pilot.press("a")
        await pilot.pause()
        assert app.workers_table.row_keys[-3:] == ["telemetry/0", "telemetry/1", "alerts/0"]
        await pilot.press("a")
        await pilot.pause()
        assert len(app.workers_table.row_keys) == 4


async def test_l_limits_the_log_to_the_selected_worker() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        assert "fleet" in log_text(app)
        await pilot.press("down", "down", "l")
        await pilot.pause()
        lines = [line.text for line in app.log_pane.lines]
        assert lines and all(" sensor-data/2 " in line for line in lines)
        await pilot.press("l")
        await pilot.pause()
        assert " fleet " in log_text(app)


async def test_enter_on_a_route_shows_its_workers() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("shift+tab", "down", "enter")
        await pilot.pause()
        assert app.workers_table.has_focus
        assert app.workers_table.row_keys == ["telemetry/0", "telemetry/1"]


async def test_help_lists_every_key() -> None:
    app = FleetApp(FixedFleet("normal"))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = [key for key, _ in app.screen.rows]
        for key in ("+", "-", "d", "D", "r", "x", "w", "/", "a", "l", "?", "q", "ctrl+c", "enter", "ctrl+p"):
            assert any(key == k or key in k.split(" ") for k in keys), key
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_offers_the_actions() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p", *"Add worker")
        found = app.screen.query_one(CommandList)

        def highlighted() -> str:
            at = found.highlighted
            return "" if at is None else str(found.get_option_at_index(at).prompt)

        # The palette searches in a worker: wait for its hit, not for a time.
        assert await until(pilot, lambda: "Add worker" in highlighted()), "the palette to offer 'Add worker'"
        await pilot.press("enter")
        assert await until(pilot, lambda: ("add_worker", "sensor-data") in fleet.calls), "the palette's add_worker"


async def test_q_stops_the_fleet_shows_the_drain_and_exits() -> None:
    gate = threading.Event()
    fleet = FixedFleet("normal", stop_gate=gate)
    app = FleetApp(fleet, refresh=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await until(pilot, lambda: "draining" in status_text(app))
        assert fleet.calls[-1][0] == "stop"
        assert "7 draining, 7 left" in status_text(app)
        assert cell(app.workers_table, "sensor-data/0", "state") == "draining"
        gate.set()
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0


async def test_second_q_forces_the_exit() -> None:
    gate = threading.Event()
    fleet = FixedFleet("normal", stop_gate=gate)
    app = FleetApp(fleet)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("q", "q")
            await pilot.pause()
        assert app.return_code == FORCED_EXIT
        assert [c[0] for c in fleet.calls].count("stop") == 1
    finally:
        gate.set()


async def test_ctrl_c_drains_like_headless_and_a_second_forces() -> None:
    gate = threading.Event()
    fleet = FixedFleet("normal", stop_gate=gate)
    app = FleetApp(fleet)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+c")
            await pilot.pause()
            assert app.quitting and app.return_code is None, "the first ctrl+c must drain, not exit"
            await pilot.press("ctrl+c")
            await pilot.pause()
        assert app.return_code == FORCED_EXIT
    finally:
        gate.set()


async def test_refresh_keeps_the_cursor_on_its_worker() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "down", "down", "down", "down")
        assert app.workers_table.cursor_key == "telemetry/0"
        fleet.add_worker("sensor-data")
        app.refresh_fleet()
        await pilot.pause()
        assert app.workers_table.row_keys.index("sensor-data/4") == 4
        assert app.workers_table.cursor_key == "telemetry/0"
        fleet.kill_worker("sensor-data/0")
        fleet.remove_worker("sensor-data", "sensor-data/4")
        app.refresh_fleet()
        await pilot.pause()
        assert app.workers_table.cursor_key == "telemetry/0"


async def test_refresh_updates_cells_in_place_without_clearing(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet)
    async with app.run_test(size=SIZE):
        table = app.workers_table
        monkeypatch.setattr(table, "clear", lambda *a, **k: pytest.fail("clear() on refresh"))
        updated: list[tuple] = []
        original = table.patch
        monkeypatch.setattr(table, "update_cell", lambda *a, **k: pytest.fail("update_cell() repaints every cell"))
        monkeypatch.setattr(table, "patch",
                            lambda changes: (updated.extend((row, col) for row, col, _ in changes), original(changes)))
        app.refresh_fleet()
        assert updated == []
        fleet.kill_worker("sensor-data/0")
        app.refresh_fleet()
        assert ("sensor-data/0", "state") in updated
        assert all(row == "sensor-data/0" for row, _ in updated)


async def test_error_records_from_the_fleet_notify_once() -> None:
    app = FleetApp(FixedFleet("crashloop"), refresh=0.02)
    refreshes = count_refreshes(app)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        assert await until(pilot, lambda: error_notes(app)), "the crash loop's error"
        seen = refreshes()
        assert await until(pilot, lambda: refreshes() >= seen + 3), "three more refreshes"
        errors = error_notes(app)
        assert len(errors) == 1
        assert "telemetry/1: crash loop" in errors[0]


async def test_crashloop_reason_is_shown_for_the_selected_worker() -> None:
    app = FleetApp(FixedFleet("crashloop"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("shift+tab", "down", "enter", "down")
        await pilot.pause()
        assert app.workers_table.cursor_key == "telemetry/1"
        assert cell(app.workers_table, "telemetry/1", "state") == "crashloop"
        title = str(app.workers_table.border_title)
        assert "KeyError: 'site'" in title and "failures, retry in" in title, title


@pytest.mark.parametrize("width", [80, 100, 120, 160])
async def test_narrow_columns_collapse_first_and_essentials_fit(width: int) -> None:
    app = FleetApp(FixedFleet("crashloop"))
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.pause()
        for table in (app.routes_table, app.workers_table):
            total = sum(col.get_render_width(table) for col in table.columns.values())
            assert total <= width - 1, (table.id, total)
            assert table.region.height >= 4 and table.region.bottom <= 23
        assert app.log_pane.region.height >= 3 and app.log_pane.region.bottom <= 23
        workers = set(app.workers_table.shown_keys)
        assert {"id", "pid", "state", "handled", "rate", "failed", "cpu", "uss", "restarts", "debug"} <= workers
        if width == 80:
            assert not workers & {"fds", "threads", "uptime"}
            assert "topic" not in app.routes_table.shown_keys
        if width == 160:
            assert {"fds", "threads", "uptime", "reason"} <= workers
            assert {"topic", "spark"} <= set(app.routes_table.shown_keys)


async def test_resizing_rebuilds_columns_and_keeps_rows_and_cursor() -> None:
    app = FleetApp(FixedFleet("normal"))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("down", "down")
        assert "fds" in app.workers_table.shown_keys
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert "fds" not in app.workers_table.shown_keys
        assert len(app.workers_table.row_keys) == 4
        assert app.workers_table.cursor_key == "sensor-data/2"
        assert cell(app.workers_table, "sensor-data/2", "state") == "subscribed"


class BrokenFleet(FixedFleet):
    """A FixedFleet whose snapshot() starts failing on demand, and whose stop() raises."""

    broken = False

    def snapshot(self):
        if self.broken:
            raise RuntimeError("supervisor lock timed out")
        return super().snapshot()

    def stop(self, timeout: float = 10.0) -> None:
        raise OSError("broker would not stop")


async def test_a_failing_snapshot_is_reported_once_and_the_ui_keeps_running() -> None:
    fleet = BrokenFleet("normal")
    app = FleetApp(fleet, refresh=0.02)
    refreshes = count_refreshes(app)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        fleet.broken = True  # every refresh from here on fails (they all run on this loop)
        # Counted in refreshes, not in seconds: a slow machine refreshes less often in 0.2 s.
        seen = refreshes()
        assert await until(pilot, lambda: refreshes() >= seen + 3), "three failed refreshes"
        errors = error_notes(app)
        assert len(errors) == 1 and "supervisor lock timed out" in errors[0]
        assert app.workers_table.row_keys == [f"sensor-data/{i}" for i in range(4)]
        fleet.broken = False
        seen = refreshes()
        assert await until(pilot, lambda: refreshes() > seen), "a good refresh"
        assert app._engine_error is None and app.return_code is None


async def test_a_failing_stop_exits_with_an_error_code() -> None:
    app = FleetApp(BrokenFleet("normal"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1


async def test_refresh_stays_every_second_at_500_workers_slows_beyond_and_comes_back() -> None:
    fleet = FixedFleet("normal")
    app = FleetApp(fleet, refresh=1.0)
    async with app.run_test(size=SIZE) as pilot:
        assert app._period == 1.0
        app._adapt_period(500)
        assert app._period == 1.0
        app._adapt_period(1000)
        assert app._period == 2.0
        app._adapt_period(len(fleet.snapshot().workers))
        assert app._period == 1.0
        await pilot.pause()
