"""KeyedTable shows strings as they are: never as Rich markup."""

from __future__ import annotations

from textual.app import App, ComposeResult

from rmqtui.ui.columns import ColumnSpec
from rmqtui.ui.keyed_table import KeyedTable


class Table(KeyedTable):
    SPECS = (ColumnSpec("id", "id", 6), ColumnSpec("reason", "reason", 30), ColumnSpec("n", "n", 4, right=True))


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        self.table = Table()
        yield self.table

    def on_mount(self) -> None:
        self.table.fit(60)


def shown(table: KeyedTable, row: str) -> str:
    y = table.get_row_index(row) + 1  # below the header
    return "".join(segment.text for segment in table.render_line(y))


async def test_strings_that_look_like_markup_are_shown_as_written_added_and_updated() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 8)) as pilot:
        app.table.sync([("w1", {"id": "w1", "reason": "KeyError: '[/site]'", "n": "[b]1"})])
        await pilot.pause()
        assert "KeyError: '[/site]'" in shown(app.table, "w1") and "[b]1" in shown(app.table, "w1")
        app.table.sync([("w1", {"id": "w1", "reason": "got [bold]x[/bold]", "n": "2"})])
        await pilot.pause()
        assert "got [bold]x[/bold]" in shown(app.table, "w1")
