"""The workers pane: one row per worker slot, coloured by state, sortable by any column."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence

from rich.text import Text

from rmqtui.engine.snapshot import WorkerSnapshot, WorkerState

from .. import format as fmt
from .columns import ColumnSpec
from .keyed_table import Cell, KeyedTable, part_style

_SortValue = Callable[[WorkerSnapshot], float | str]
_Styled = Callable[[str, str], Text]  # (text, component class or "") -> a Text to share, never to change

# What each column sorts by: the figure itself, not its formatted text; unknown figures sort lowest.
SORT_VALUES: dict[str, _SortValue] = {
    "pid": lambda w: w.pid if w.pid is not None else -1,
    "state": lambda w: w.state.value,
    "handled": lambda w: w.handled,
    "rate": lambda w: w.rate,
    "failed": lambda w: w.failed,
    "cpu": lambda w: w.cpu_percent if w.cpu_percent is not None else -1.0,
    "uss": lambda w: w.uss if w.uss is not None else -1,
    "restarts": lambda w: w.restarts,
    "debug": lambda w: 1 if w.debug else 0,
    "reason": lambda w: w.reason,
    "uptime": lambda w: -w.started if w.started is not None else -float("inf"),  # longest-running first
    "fds": lambda w: w.fds if w.fds is not None else -1,
    "threads": lambda w: w.threads if w.threads is not None else -1,
}
TEXT_COLUMNS = frozenset({"id", "state", "reason"})
"""Columns that sort A to Z by default; the figures sort highest first, as in htop."""


def sort_workers(workers: Sequence[WorkerSnapshot], key: str, reverse: bool = False) -> list[WorkerSnapshot]:
    """``workers`` ordered by column ``key`` ("id" keeps the snapshot's route/slot order).

    Figures come highest first and text A to Z; ``reverse`` flips that.  Ties keep
    the snapshot's order, so rows with equal values do not swap on every refresh.
    """
    if key == "id" or key not in SORT_VALUES:
        return list(reversed(workers)) if reverse else list(workers)
    descending = key not in TEXT_COLUMNS
    ordered = sorted(workers, key=SORT_VALUES[key], reverse=descending != reverse)
    return ordered


class WorkersTable(KeyedTable):
    """Workers with their state, counters and process metrics; state colours come from rmqtui.tcss."""

    # Essential columns (drop 0) fit 60 columns; those with drop 1 join them at 80.
    SPECS = (
        ColumnSpec("id", "worker", 13),
        ColumnSpec("pid", "pid", 7, drop=1, right=True),
        ColumnSpec("state", "state", 12),
        ColumnSpec("handled", "done", 6, right=True),
        ColumnSpec("rate", "msg/s", 5, right=True),
        ColumnSpec("failed", "fail", 4, drop=1, right=True),
        ColumnSpec("cpu", "cpu%", 4, right=True),
        ColumnSpec("uss", "MB", 4, right=True),
        ColumnSpec("restarts", "rst", 3, drop=1, right=True),
        ColumnSpec("debug", "D", 1, drop=1),
        ColumnSpec("reason", "reason", 16, drop=2, flex=True, max_width=240),
        ColumnSpec("uptime", "uptime", 6, drop=3, right=True),
        ColumnSpec("fds", "fds", 4, drop=4, right=True),
        ColumnSpec("threads", "thr", 3, drop=5, right=True),
    )
    COMPONENT_CLASSES = ({f"state--{s.value}" for s in WorkerState}
                         | {"workers--debug", "workers--failed", "workers--marked"})

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shows: dict[str, tuple] = {}  # id -> what its row's cells (KeyedTable's) were built from

    def show(self, workers: list[WorkerSnapshot], marked: Collection[str] = (), now: float = 0.0) -> None:
        """Update the rows to exactly ``workers``, in order; ``marked`` ids are highlighted; ``now``
        (the snapshot's unix time) is what uptimes are counted to."""
        # Styles are looked up, and each styled text built, once per refresh rather than per worker:
        # a CSS lookup costs about as much as building a row.
        style = functools.cache(lambda name: part_style(self, name))
        styled: _Styled = functools.cache(lambda text, name: Text(text, style(name) if name else ""))
        theme = getattr(self.app, "theme", None)
        rows, shows = [], {}
        for w in workers:
            # A worker whose snapshot object is the one of the last refresh (the engine and the
            # control socket keep unchanged workers' snapshots) keeps its row: nothing is formatted
            # or compared, unless its uptime text or its mark changed.
            mark = w.id in marked
            uptime = fmt.duration(w.uptime_at(now))
            shows[w.id] = key = (w, mark, uptime, theme)
            cells = self._cells.get(w.id)
            if cells is None or self._shows.get(w.id) != key:
                cells = self._cells_of(w, mark, styled, uptime)
            rows.append((w.id, cells))
        self._shows = shows
        self.sync(rows)

    @staticmethod
    def _cells_of(w: WorkerSnapshot, marked: bool, styled: _Styled, uptime: str) -> dict[str, Cell]:
        return {
            "id": styled(w.id, "workers--marked") if marked else w.id,
            "pid": fmt.plain(w.pid),
            "state": styled(w.state.value, f"state--{w.state.value}"),
            "handled": fmt.count(w.handled),
            "rate": fmt.rate(w.rate),
            "failed": styled(fmt.count(w.failed), "workers--failed" if w.failed else ""),
            "cpu": fmt.percent(w.cpu_percent),
            "uss": fmt.megabytes(w.uss),
            "restarts": str(w.restarts),
            "debug": styled("D", "workers--debug") if w.debug else "",
            "reason": w.reason,
            "uptime": uptime,
            "fds": fmt.plain(w.fds),
            "threads": fmt.plain(w.threads),
        }
