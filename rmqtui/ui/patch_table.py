"""A DataTable whose cell updates re-render only the cells that changed.

``DataTable.update_cell`` bumps one update counter that is part of every render cache key,
so changing a single cell re-renders every visible cell of the table.  With a hundred
workers whose uptime or CPU figure changes each second that was most of the TUI's CPU
(issue 16).  :meth:`PatchTable.patch` writes the new values, forgets only the cache
entries that show them (the cells, and the lines of their rows) and repaints only those
lines; every other cell keeps its rendering.

This leans on DataTable's private caches (Textual 8); tests/ui/test_patch_table.py checks
that a patched cell shows its new value and that the other cells are not rendered again,
so a Textual release that changes them fails there, not on screen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

_CACHES = ("_data", "_cell_render_cache", "_row_render_cache", "_row_renderable_cache", "_line_cache",
           "_row_locations", "_y_offsets")


class PatchTable(DataTable):
    """A DataTable with :meth:`patch`, a cheap ``update_cell`` for many cells at once."""

    def patch(self, changes: Iterable[tuple[str, str, Any]]) -> None:
        """Set each (row key, column key, value); only the changed cells are rendered again.

        Rows and columns must exist; column widths stay as they are (rmqtui's tables give
        every column a fixed width).
        """
        changes = list(changes)
        if not changes:
            return
        if not all(hasattr(self, name) for name in _CACHES):  # another Textual: the slow, sure way
            for row, column, value in changes:
                self.update_cell(row, column, value)
            return
        cells = set()
        for row, column, value in changes:
            row_key, column_key = RowKey(row), ColumnKey(column)
            if row_key not in self.rows or column_key not in self.columns:
                raise CellDoesNotExist(f"No cell exists for row_key={row!r}, column_key={column!r}.")
            self._data[row_key][column_key] = value
            cells.add((row_key, column_key))
        self._forget(cells)

    def _forget(self, cells: set[tuple[RowKey, ColumnKey]]) -> None:
        """Drop the cached renderings that show ``cells`` and repaint their lines."""
        rows = {row for row, _ in cells}
        indexes = {self._row_locations.get(row) for row in rows}
        lines = self._lines_of(rows)
        _discard(self._cell_render_cache, lambda key: (key[0], key[1]) in cells)
        _discard(self._row_render_cache, lambda key: key[0] in rows)
        _discard(self._row_renderable_cache, lambda key: key[1] in indexes)
        _discard(self._line_cache, lambda key: key[0] in lines)
        self._repaint(lines)

    def _lines_of(self, rows: set[RowKey]) -> set[int]:
        """The table's line numbers (header first, before scrolling) that show ``rows``."""
        header = self.header_height if self.show_header else 0
        return {y for y, (row, _) in enumerate(self._y_offsets, start=header) if row in rows}

    def _repaint(self, lines: set[int]) -> None:
        """Refresh the visible ones of ``lines`` (the header and fixed rows are not patched)."""
        window = self.window_region
        width = max(self.size.width, self.virtual_size.width)
        regions = [Region(0, y, width, 1) for y in lines]
        visible = [r.translate(-self.scroll_offset) for r in regions if window.overlaps(r)]
        if visible:
            self.refresh(*visible)


def _discard(cache: Any, stale: Callable[[Any], bool]) -> None:
    for key in [key for key in cache.keys() if stale(key)]:
        cache.discard(key)
