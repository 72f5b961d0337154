"""The TUI's views on a scripted FleetControl: honest figures, sorting, the detail screen, small terminals."""

from __future__ import annotations

import re

from rich.text import Text

from rmqtui.ui.app import FleetApp
from rmqtui.ui.detail import WorkerDetailScreen
from rmqtui.ui.workers_table import sort_workers
from tests.tui_fleet import LONG_REASON, ScriptedFleet, workers_at

SIZE = (80, 24)


def cell(table, row: str, column: str) -> str:
    value = table.get_cell(row, column)
    return value.plain if isinstance(value, Text) else str(value)


def app_on(fleet: ScriptedFleet | None = None) -> FleetApp:
    # A refresh far in the future: each test refreshes when it has changed the fleet.
    return FleetApp(fleet or ScriptedFleet(), refresh=3600)


async def test_figures_are_honest() -> None:
    fleet = ScriptedFleet()
    app = app_on(fleet)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        table = app.workers_table
        # MB is USS (7 MiB), not RSS (29 MiB)
        assert cell(table, "orders/1", "uss") == "7", "the MB column must show USS"
        # run/want counts subscribed workers: orders/2 has a process but is disconnected
        assert cell(app.routes_table, "orders", "workers") == "2/3", "run/want must count subscribed workers"
        assert "subscribed 3/5" in str(app.status_bar.render()), "the status line counts subscribed workers"
        assert cell(table, "orders/2", "state") == "disconnected", "states are full words"
        assert cell(table, "orders/2", "reason") == LONG_REASON, "a reason is not cut when there is room"


async def test_enter_opens_the_detail_screen_with_every_figure() -> None:
    fleet = ScriptedFleet()
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, WorkerDetailScreen), "enter on a worker opens its detail screen"
        text = str(screen.figures.render())
        for expected in ("orders/0", "subscribed", "rmq-host-orders-0", "received 90412", "handled 90400",
                         "failed 9", "dead-lettered 3", "in flight 3", "RSS 31.0 MiB", "fds 14", "threads 4",
                         "restarts 2", "last exit signal 9", "log INFO", "handler 2.00 ms/msg",
                         "killed from outside (signal 9)", "crashed (code 1)"):
            assert expected in text, f"{expected!r} missing from the detail figures"
        assert re.search(r"USS \d+\.\d MiB", text), "USS shown in MiB"
        assert text.index("killed from outside") < text.index("crashed (code 1)"), "newest exit first"
        lines = [strip.text for strip in screen.log_pane.lines]
        assert lines and all(" orders/0 " in line for line in lines), "the detail log holds its worker only"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, WorkerDetailScreen), "escape goes back to the fleet"


async def test_detail_charts_follow_the_history_and_new_records_arrive() -> None:
    fleet = ScriptedFleet()
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        for t in range(0, 300, 2):
            app.history.record(fleet.snapshot_at(float(t)))
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        charts = str(screen.charts.render())
        bars = set("".join(re.findall(r"[▁▂▃▄▅▆▇█]+", charts)))
        assert len(bars) >= 4, f"the charts should show varying heights, got {sorted(bars)}"
        assert "last 4m" in charts, "the chart spans the kept history (298 s)"
        fleet.log("ERROR", "orders/0", "handler raised ValueError: bad order id")
        fleet.log("ERROR", "orders/1", "someone else's error")
        fleet.advance(1)
        app.refresh_fleet()
        await pilot.pause()
        lines = [strip.text for strip in screen.log_pane.lines]
        assert any("bad order id" in line for line in lines), "new records of the worker reach its detail log"
        assert not any("someone else" in line for line in lines), "other workers' records stay out"


async def test_sorting_by_any_column_is_kept_across_refreshes() -> None:
    fleet = ScriptedFleet()
    app = app_on(fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("a")
        keys = app.workers_table.shown_keys
        for _ in range(keys.index("cpu")):
            await pilot.press("greater_than_sign")
        await pilot.pause()
        assert app.sort_key == "cpu"
        snap = fleet.snapshot()
        assert app.workers_table.row_keys == [w.id for w in sort_workers(snap.workers, "cpu")]
        assert app.workers_table.row_keys[0] == "orders/0", "highest CPU first, as in htop"
        assert "by cpu%" in str(app.workers_table.border_title)
        # new figures: the order follows them
        fleet.advance(47)
        app.refresh_fleet()
        await pilot.pause()
        expected = [w.id for w in sort_workers(fleet.snapshot().workers, "cpu")]
        assert app.workers_table.row_keys == expected, "the sort is kept when the figures change"
        await pilot.press("I")
        await pilot.pause()
        assert app.workers_table.row_keys == expected[::-1], "I inverts the order"
        await pilot.press("less_than_sign")
        await pilot.pause()
        assert app.sort_key == keys[keys.index("cpu") - 1], "< moves the sort one column left"


def test_sort_workers_puts_unknown_figures_last_and_keeps_ties_stable() -> None:
    workers = workers_at(0.0)
    by_uptime = sort_workers(workers, "uptime")
    assert [w.id for w in by_uptime][:2] == ["orders/0", "audit/0"], "ties keep the snapshot order"
    by_state = sort_workers(workers, "state")
    assert [w.state.value for w in by_state] == sorted(w.state.value for w in workers), "text sorts A to Z"
    assert sort_workers(workers, "id") == workers, "the id column is the route/slot order"


async def test_rows_stay_in_sorted_order_after_a_resize_with_all_routes() -> None:
    app = app_on()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("a", "greater_than_sign", "greater_than_sign")  # sort by state
        await pilot.pause()
        before = app.workers_table.row_keys
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert app.workers_table.row_keys == before, "a resize rebuilds the rows in display order"
        await pilot.press("a", "a")
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert app.workers_table.row_keys == before


async def test_end_and_home_move_the_cursor() -> None:
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "end")
        assert app.workers_table.cursor_key == "audit/1", "end moves the cursor to the last row"
        await pilot.press("home")
        assert app.workers_table.cursor_key == "orders/0", "home moves the cursor to the first row"


async def test_60x20_keeps_both_status_lines_and_help_and_quit_in_the_footer() -> None:
    app = app_on()
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        assert app.status_bar.region.height == 2
        assert len(str(app.status_bar.render()).splitlines()) == 2, "the second status line stays"
        footer = app.screen.query_one("Footer")
        shown = [k.region for k in footer.query("FooterKey") if k.region.right <= 60 and k.region.width]
        labels = [str(k.render()) for k in footer.query("FooterKey") if k.region.right <= 60 and k.region.width]
        assert shown and any("Help" in label for label in labels) and any("Quit" in label for label in labels), \
            f"help and quit must stay in a 60-column footer: {labels}"
        assert app.workers_table.region.height >= 4 and app.log_pane.region.height >= 3


async def test_notifications_never_cover_the_last_lines_of_the_log() -> None:
    app = app_on()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.notify("a long notification that would cover the log pane if it sat at the bottom", timeout=30)
        app.notify("and a second one, stacked", timeout=30)
        await pilot.pause()
        toasts = list(app.screen.query("Toast"))
        assert toasts, "the notifications are shown"
        log = app.log_pane.region
        last_lines = log.__class__(log.x, log.bottom - 3, log.width, 3)
        for toast in toasts:
            assert not toast.region.overlaps(last_lines), f"a toast at {toast.region} covers the log's last lines"


async def test_the_palette_has_one_quit_and_it_drains() -> None:
    app = app_on()
    async with app.run_test(size=SIZE):
        system = [c.title for c in app.get_system_commands(app.screen)]
        assert "Quit" not in system, "the system Quit exits without draining"
        from rmqtui.ui.commands import PALETTE_ACTIONS
        assert [a for a in PALETTE_ACTIONS if a[0] == "Quit"] == [("Quit", "quit", "Drain the fleet and quit")]


async def test_summary_after_quitting_has_the_totals() -> None:
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
    text = app.summary()
    assert "handled 144959" in text and "dead-lettered 3" in text and "/srv/state/logs" in text, text


async def test_detail_log_search_then_escape_clears_then_closes() -> None:
    fleet = ScriptedFleet()
    fleet.log("INFO", "orders/0", "order 17 stored")
    fleet.log("INFO", "orders/0", "order 18 stored")
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        await pilot.press("slash", *"18")
        await pilot.pause()
        lines = [strip.text for strip in screen.log_pane.lines]
        assert lines and all("18" in line for line in lines), f"the detail log filters as you type: {lines}"
        await pilot.press("escape")
        await pilot.pause()
        assert screen.log_pane.search == "" and app.screen is screen, "the first escape clears the search"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen, "the second escape closes the detail screen"


async def test_keys_on_the_detail_screen_act_on_its_worker_even_with_marks() -> None:
    fleet = ScriptedFleet()
    app = app_on(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("space", "space")  # marks orders/0 and orders/1; the cursor is on orders/2
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, WorkerDetailScreen) and app.screen.worker_id == "orders/2"
        await pilot.press("r")
        await pilot.pause()
        assert fleet.calls[-1] == ("restart_worker", "orders/2"), "r restarts the worker on screen only"


def test_the_demo_fleet_detail_shows_the_exit_causes_its_core_recorded() -> None:
    from rmqtui.demo import FixedFleet
    from rmqtui.ui.detail import figures

    for scenario, worker, cause in (("normal", "sensor-data/2", "killed from outside (signal 9)"),
                                    ("crashloop", "telemetry/1", "crashed (code 1)")):
        snap = FixedFleet(scenario).snapshot()
        w = next(w for w in snap.workers if w.id == worker)
        assert w.exits, f"{scenario}: the demo's core recorded no exit for {worker}"
        assert cause in str(figures(w, snap.time)), (scenario, w.exits)
