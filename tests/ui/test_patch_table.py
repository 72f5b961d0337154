"""PatchTable.patch re-renders only the cells it changes, and they show their new values.

patch() drops entries from DataTable's private render caches; these tests fail if a
Textual release changes those caches so that a patched cell keeps its old rendering
(or every cell is rendered again, as with update_cell).
"""

from __future__ import annotations

import pytest
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.widgets.data_table import CellDoesNotExist

from rmqtui.ui.patch_table import PatchTable

ROWS, COLUMNS = 40, ("a", "b", "c")


class Counted:
    """A cell that counts how often the table renders it."""

    renders: list[str] = []

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        Counted.renders.append(self.text)
        yield Segment(self.text)


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        self.table = PatchTable(cursor_type="row")
        yield self.table

    def on_mount(self) -> None:
        for key in COLUMNS:
            self.table.add_column(key, width=6, key=key)
        for n in range(ROWS):
            self.table.add_row(*(Counted(f"{c}{n}") for c in COLUMNS), key=f"r{n}")


def line_text(table: PatchTable, row: str) -> str:
    y = table.get_row_index(row) + 1 - table.scroll_offset.y  # below the header
    return "".join(segment.text for segment in table.render_line(y))


@pytest.fixture(autouse=True)
def fresh_counts():
    Counted.renders = []


async def settled(app: TableApp, pilot) -> None:
    """Wait for the first frames; DataTable's resize handler drops its caches without repainting, so repaint."""
    await pilot.pause()
    app.table.refresh()
    await pilot.pause()


async def test_a_patched_cell_is_the_only_cell_rendered_again_and_shows_its_new_value() -> None:
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        await settled(app, pilot)
        assert "a1" in Counted.renders
        Counted.renders = []
        app.table.patch([("r1", "b", Counted("NEW"))])
        await pilot.pause()
        assert Counted.renders == ["NEW"]
        assert "NEW" in line_text(app.table, "r1") and "a1" in line_text(app.table, "r1")
        assert app.table.get_cell("r1", "b").text == "NEW"


async def test_patching_repaints_only_the_lines_of_the_patched_rows() -> None:
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        regions = []
        original = app.table.refresh
        app.table.refresh = lambda *r, **k: (regions.extend(r), original(*r, **k))[1]
        app.table.patch([("r2", "a", Counted("x")), ("r2", "c", Counted("y")), ("r30", "a", Counted("far"))])
        assert [(r.y, r.height) for r in regions] == [(3, 1)]  # r2 under the header; r30 is off screen


async def test_a_row_patched_off_screen_shows_its_new_value_when_scrolled_to() -> None:
    app = TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        app.table.patch([("r30", "a", Counted("far"))])
        app.table.move_cursor(row=30, animate=False)
        await pilot.pause()
        assert "far" in line_text(app.table, "r30")
        app.table.patch([("r30", "c", Counted("again"))])
        await pilot.pause()
        assert "far" in line_text(app.table, "r30") and "again" in line_text(app.table, "r30")


async def test_patching_a_missing_cell_raises_like_update_cell() -> None:
    app = TableApp()
    async with app.run_test(size=(40, 12)):
        with pytest.raises(CellDoesNotExist):
            app.table.patch([("nope", "a", "x")])
        with pytest.raises(CellDoesNotExist):
            app.table.patch([("r1", "nope", "x")])
