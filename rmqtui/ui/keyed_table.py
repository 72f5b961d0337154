"""A DataTable whose rows are keyed by id and updated by diff, never cleared on refresh."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget

from .columns import ColumnSpec, ShownColumn, fit_columns
from .patch_table import PatchTable

Cell = str | Text


def part_style(widget: Widget, component: str) -> Style:
    """The Rich style of a component class from rmqtui.tcss (unstyled while the CSS is being re-applied)."""
    return widget.get_component_rich_style(component, partial=True, default=Style.null())


def _same(a: Cell, b: Cell) -> bool:
    if a is b:
        return True
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain == b.plain and a.style == b.style and a.spans == b.spans
    return type(a) is type(b) and a == b


class KeyedTable(PatchTable):
    """Rows keyed by a string id; :meth:`sync` adds, updates and removes rows in place.

    The first column must show the row key as its text: it is what rows are
    re-ordered by when new rows arrive.  :meth:`fit` picks the columns that fit
    the pane's width and rebuilds the columns only when that set changes.  Only cells
    whose text or style changed are written, and only those are rendered again.
    """

    SPECS: Sequence[ColumnSpec] = ()
    COMPONENT_CLASSES = {"keyed--sorted"}
    # DataTable scrolls on home/end and leaves the cursor behind, so a key then acts on a row
    # that is off screen; here they move the cursor.
    BINDINGS = [
        Binding("home", "cursor_first", "First row", show=False),
        Binding("end", "cursor_last", "Last row", show=False),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", cell_padding=1)
        self._shown: list[ShownColumn] = []
        self._cells: dict[str, dict[str, Cell]] = {}
        self._order: list[str] = []  # row keys in display order, to rebuild rows in that order
        self.sort_key: str | None = None  # column whose header is marked as the sort column

    def action_cursor_first(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_cursor_last(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    @property
    def shown_keys(self) -> list[str]:
        """Keys of the columns currently displayed, in order."""
        return [c.key for c in self._shown]

    @property
    def row_keys(self) -> list[str]:
        """Keys of the rows in display order."""
        return [row.key.value for row in self.ordered_rows]

    @property
    def cursor_key(self) -> str | None:
        """Key of the row under the cursor, if any."""
        if not self.row_count or not self.is_valid_row_index(self.cursor_row):
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def fit(self, available: int) -> bool:
        """Show the columns that fit ``available`` cells; True when the columns changed."""
        shown = fit_columns(self.SPECS, available, self.cell_padding)
        if [(c.key, c.width) for c in shown] == [(c.key, c.width) for c in self._shown]:
            return False
        self._shown = shown
        self._rebuild()
        return True

    def mark_sort_column(self, key: str | None) -> None:
        """Highlight the header of column ``key`` (None: no column) as the one rows are sorted by."""
        if key != self.sort_key:
            self.sort_key = key
            self._rebuild()

    def _rebuild(self) -> None:
        keep = self.cursor_key
        self.clear(columns=True)
        sorted_style = part_style(self, "keyed--sorted") if self.sort_key else Style.null()
        for col in self._shown:
            label = Text(col.spec.label, justify="right" if col.spec.right else "left")
            if col.key == self.sort_key:
                label.stylize(sorted_style)
            self.add_column(label, width=col.width, key=col.key)
        for key in self._order:
            self.add_row(*self._ordered(self._cells[key]), key=key)
        self._restore_cursor(keep)

    def sync(self, rows: Iterable[tuple[str, dict[str, Cell]]]) -> None:
        """Make the table show exactly ``rows`` (key, cells by column key), in that order."""
        wanted = dict(rows)
        keep = self.cursor_key
        for key in [k for k in self._cells if k not in wanted]:
            self.remove_row(key)
            del self._cells[key]
        added = False
        changed: list[tuple[str, str, Cell]] = []
        for key, cells in wanted.items():
            old = self._cells.get(key)
            if old is cells:  # the caller kept the row as it was
                continue
            if old is None:
                self.add_row(*self._ordered(cells), key=key)
                added = True
            else:
                changed += [(key, col.key, self._cell(col, cells[col.key])) for col in self._shown
                            if not _same(old[col.key], cells[col.key])]
            self._cells[key] = cells
        self.patch(changed)
        order_changed = list(wanted) != self._order
        self._order = list(wanted)
        if (added or order_changed) and self._shown and self.row_keys != self._order:
            order = {key: i for i, key in enumerate(wanted)}
            first = self._shown[0].key
            self.sort(first, key=lambda cell: order.get(cell.plain if isinstance(cell, Text) else cell, len(order)))
        self._restore_cursor(keep)

    def _ordered(self, cells: dict[str, Cell]) -> list[Cell]:
        return [self._cell(col, cells[col.key]) for col in self._shown]

    @staticmethod
    def _cell(col: ShownColumn, cell: Cell) -> Text:
        """The cell as the table holds it: always Text, so DataTable never reads a string as markup
        (a reason such as "KeyError: '[/x]'" would fail to render, and parsing costs time on every row drawn)."""
        if isinstance(cell, str):
            cell = Text(cell, end="", no_wrap=True)
        elif col.spec.right:
            cell = cell.copy()
        if col.spec.right:
            cell.justify = "right"
        return cell

    def _restore_cursor(self, key: str | None) -> None:
        if key is None or key not in self._cells:
            return
        index = self.get_row_index(key)
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False, scroll=False)
