"""New keys on a scripted FleetControl: scale, marks, R with live changes, ctrl-c, the log pane's controls."""

from __future__ import annotations

import threading

from rmqtui.engine.snapshot import LogRecord
from rmqtui.ui.app import FORCED_EXIT, FleetApp
from rmqtui.ui.dialogs import ConfirmScreen, PromptScreen
from rmqtui.ui.log_pane import LogPane
from tests.tui_fleet import ScriptedFleet
from tests.ui.waiting import until

SIZE = (80, 24)


def app_on(fleet: ScriptedFleet) -> FleetApp:
    return FleetApp(fleet, refresh=3600)


def log_lines(pane: LogPane) -> list[str]:
    return [strip.text for strip in pane.lines]


async def test_s_scales_the_selected_route_to_a_typed_number_and_says_what_0_does() -> None:
    fleet = ScriptedFleet()
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen), "s asks for the number of workers"
        assert "0 pauses the route" in app.screen.question and "queues" in app.screen.question
        await pilot.press("ctrl+a", "ctrl+k", "0", "enter")
        await pilot.pause()
        assert fleet.calls[-1] == ("scale", "orders", 0), "0 is a valid count"
        await pilot.press("s", "ctrl+a", "ctrl+k", *"many", "enter")
        await pilot.pause()
        assert fleet.calls[-1] == ("scale", "orders", 0), "a word is refused before reaching the fleet"
        assert any("'many' is not a number" in line for line in log_lines(app.log_pane))
        await pilot.press("s", "escape")
        await pilot.pause()
        assert len([c for c in fleet.calls if c[0] == "scale"]) == 1, "escape cancels"


async def test_marks_make_r_x_and_d_act_on_every_marked_worker() -> None:
    fleet = ScriptedFleet()
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("space", "down", "space")  # marks orders/0 and orders/2
        await pilot.pause()
        assert app.marked == {"orders/0", "orders/2"}
        assert "2 marked" in str(app.workers_table.border_title)
        await pilot.press("r")
        await pilot.pause()
        assert [c for c in fleet.calls if c[0] == "restart_worker"] == [
            ("restart_worker", "orders/0"), ("restart_worker", "orders/2")]
        await pilot.press("d")
        await pilot.pause()
        assert fleet.calls[-2:] == [("set_log_level", "DEBUG", "orders/0"), ("set_log_level", "DEBUG", "orders/2")]
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "2 marked workers" in app.screen.question
        await pilot.press("y")
        await pilot.pause()
        assert fleet.calls[-2:] == [("kill_worker", "orders/0"), ("kill_worker", "orders/2")]
        await pilot.press("U", "r")
        await pilot.pause()
        assert not app.marked
        assert fleet.calls[-1] == ("restart_worker", app.workers_table.cursor_key), "unmarked: r acts on one"


async def test_R_names_the_live_changes_it_replaces() -> None:
    fleet = ScriptedFleet()
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("plus", "D")
        await pilot.pause()
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen), "R with live changes asks first"
        assert "orders: 4 workers (was 3)" in app.screen.question
        assert "fleet log level DEBUG" in app.screen.question
        await pilot.press("y")
        await until(pilot, lambda: ("reload_config",) in fleet.calls
                    and "replaced live changes" in "\n".join(log_lines(app.log_pane)))
        assert ("reload_config",) in fleet.calls
        assert any("replaced live changes: orders: 4 workers (was 3)" in line for line in log_lines(app.log_pane))
        # nothing live any more: R reloads at once
        await pilot.press("R")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)


async def test_ctrl_c_drains_and_a_second_ctrl_c_forces_through_the_fleet() -> None:
    fleet = ScriptedFleet()
    fleet.stop_gate = threading.Event()
    app = app_on(fleet)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+c")
            await until(pilot, lambda: any(c[0] == "stop" for c in fleet.calls))
            assert any(c[0] == "stop" for c in fleet.calls), "the first ctrl+c drains (fleet.stop)"
            assert app.return_code is None and not fleet.forced
            await pilot.press("ctrl+c")
            await pilot.pause()
        assert fleet.forced, "the second ctrl+c calls fleet.force()"
        assert app.return_code == FORCED_EXIT
    finally:
        fleet.stop_gate.set()


async def focus_log(app: FleetApp, pilot) -> LogPane:
    app.log_pane.focus()
    await pilot.pause()
    return app.log_pane


async def test_log_pane_pauses_and_resumes() -> None:
    fleet = ScriptedFleet()
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        pane = await focus_log(app, pilot)
        await pilot.press("p")
        fleet.log("INFO", "orders/1", "arrived while paused")
        app.refresh_fleet()
        await pilot.pause()
        assert pane.paused and not any("arrived while paused" in line for line in log_lines(pane))
        assert "PAUSED, 1 new" in str(pane.border_title)
        await pilot.press("p")
        await pilot.pause()
        assert any("arrived while paused" in line for line in log_lines(pane)), "resume shows what arrived"
        assert pane.following


async def test_log_pane_search_and_level_filter() -> None:
    fleet = ScriptedFleet()
    fleet.log("DEBUG", "orders/0", "decoded order 17")
    fleet.log("ERROR", "audit/0", "handler raised KeyError: 'user'")
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        pane = await focus_log(app, pilot)
        await pilot.press("slash", *"keyerror", "enter")
        await pilot.pause()
        assert log_lines(pane) and all("KeyError" in line for line in log_lines(pane)), "search keeps matches"
        assert "search “keyerror” (1)" in str(pane.border_title)
        await pilot.press("escape")
        await pilot.pause()
        assert any("decoded order 17" in line for line in log_lines(pane)), "esc clears the search"
        await pilot.press("v")
        await pilot.pause()
        assert pane.min_level == "INFO" and not any(" DEBUG " in line for line in log_lines(pane))
        await pilot.press("v")
        await pilot.pause()
        assert all((" WARN " in line or " ERROR " in line) for line in log_lines(pane)), "v: WARNING and up"


async def test_log_pane_scrolled_back_stays_put_and_end_follows_again() -> None:
    fleet = ScriptedFleet()
    for i in range(200):
        fleet.log("INFO", "orders/0", f"line {i}")
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        pane = await focus_log(app, pilot)
        await pilot.press("home")
        await pilot.pause()
        top = pane.scroll_y
        assert not pane.following and "scrolled back" in str(pane.border_title)
        fleet.log("INFO", "orders/0", "newest")
        app.refresh_fleet()
        await pilot.pause()
        assert pane.scroll_y == top, "a scrolled-back pane does not jump to new lines"
        await pilot.press("end")
        await pilot.pause()
        assert pane.following and pane.scroll_y == pane.max_scroll_y


async def test_log_pane_stays_bounded_under_a_flood() -> None:
    app = app_on(ScriptedFleet())
    async with app.run_test(size=SIZE) as pilot:
        pane = app.log_pane
        flood = [LogRecord(10_000 + i, 0.0, "DEBUG", "orders/0", f"record {i}") for i in range(pane.max_records * 2)]
        for start in range(0, len(flood), 5000):
            pane.add(flood[start:start + 5000])
        await pilot.pause()
        assert len(pane._view) <= pane.max_records, "the view is capped"
        assert len(pane._records) <= pane.max_records * 5 // 4, "the kept records are capped"
        assert pane._view[-1].record.message == f"record {len(flood) - 1}", "the newest record is last"
        assert len(pane._cache) <= 512, "only lines that were drawn are rendered and cached"


async def test_text_typed_fast_after_slash_is_search_text_not_commands() -> None:
    from textual import events

    fleet = ScriptedFleet()
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        # As a terminal delivers a paste or fast typing: every key queued before the first is handled.
        for key, char in (("slash", "/"), ("o", "o"), ("minus", "-"), ("d", "d"), ("x", "x")):
            app.post_message(events.Key(key, char))
        await until(pilot, lambda: app.filter_box.value == "o-dx")
        assert app.filter_box.value == "o-dx", f"the keys after / are filter text: {app.filter_box.value!r}"
        assert not [c for c in fleet.calls if c[0] in ("remove_worker", "set_log_level", "kill_worker")], \
            f"no key after / may run a command: {fleet.calls}"
