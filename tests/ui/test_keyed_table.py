"""KeyedTable shows strings as they are: never as Rich markup."""

from __future__ import annotations

from textual.app import App, ComposeResult

from rmqtui.ui.columns import ColumnSpec
from rmqtui.ui.keyed_table import KeyedTable


class Table(KeyedTable):
    SPECS = (ColumnSpec("id", "id", 6), ColumnSpec("reason", "reason", 30), ColumnSpec("n", "n", 4, right=True))


class TableApp(App[None]):
    def __init__(self, table: KeyedTable | None = None, width: int = 60) -> None:
        super().__init__()
        self.table = table if table is not None else Table()
        self.width = width

    def compose(self) -> ComposeResult:
        yield self.table

    def on_mount(self) -> None:
        self.table.fit(self.width)


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


async def test_a_worker_whose_snapshot_object_is_unchanged_keeps_its_row_until_its_uptime_text_changes(
        monkeypatch) -> None:
    """Rows are rebuilt only for workers whose snapshot changed (the engine and the control socket keep
    unchanged workers' objects), or whose uptime text or mark changed."""
    import dataclasses

    from rmqtui.demo import FixedFleet
    from rmqtui.ui.workers_table import WorkersTable

    snap = FixedFleet("normal").snapshot()
    workers = [w for w in snap.workers if w.started is not None][:3]
    built: list[str] = []
    original = WorkersTable._cells_of

    def counting(w, *args):
        built.append(w.id)
        return original(w, *args)

    monkeypatch.setattr(WorkersTable, "_cells_of", staticmethod(counting))
    young = dataclasses.replace(workers[0], started=snap.time - 10)
    workers = [young, *workers[1:]]
    app = TableApp(WorkersTable(), width=120)
    async with app.run_test(size=(120, 10)) as pilot:
        app.table.show(workers, (), snap.time)
        await pilot.pause()
        assert sorted(built) == sorted(w.id for w in workers)
        built.clear()
        app.table.show(workers, (), snap.time + 0.5)
        assert built == [], "unchanged workers were formatted again"
        app.table.show(workers, (), snap.time + 1.0)  # the young worker's uptime 10s -> 11s
        assert built == [young.id]
        await pilot.pause()
        assert "11s" in shown(app.table, young.id)
        built.clear()
        moved = dataclasses.replace(workers[1], handled=workers[1].handled + 1)
        app.table.show([young, moved, workers[2]], {workers[2].id}, snap.time + 1.0)
        assert sorted(built) == sorted([moved.id, workers[2].id]), "a changed worker and a newly marked one"
