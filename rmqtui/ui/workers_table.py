"""The workers pane: one row per worker process, coloured by state."""

from __future__ import annotations

from rich.text import Text

from rmqtui.engine.snapshot import WorkerSnapshot, WorkerState

from . import format as fmt
from .columns import ColumnSpec
from .keyed_table import Cell, KeyedTable, part_style


class WorkersTable(KeyedTable):
    """Workers with their state, counters and process metrics; state colours come from rmqtui.tcss."""

    SPECS = (
        ColumnSpec("id", "worker", 14),
        ColumnSpec("pid", "pid", 7, right=True),
        ColumnSpec("state", "state", 10),
        ColumnSpec("handled", "done", 6, right=True),
        ColumnSpec("rate", "msg/s", 5, right=True),
        ColumnSpec("failed", "fail", 4, right=True),
        ColumnSpec("cpu", "cpu%", 4, right=True),
        ColumnSpec("rss", "MB", 4, right=True),
        ColumnSpec("restarts", "rst", 3, right=True),
        ColumnSpec("debug", "D", 1),
        ColumnSpec("reason", "reason", 16, drop=2, flex=True, max_width=60),
        ColumnSpec("uptime", "uptime", 6, drop=3, right=True),
        ColumnSpec("fds", "fds", 4, drop=4, right=True),
        ColumnSpec("threads", "thr", 3, drop=5, right=True),
    )
    COMPONENT_CLASSES = {f"state--{s.value}" for s in WorkerState} | {"workers--debug", "workers--failed"}

    def show(self, workers: list[WorkerSnapshot]) -> None:
        """Update the rows to exactly ``workers``, in order."""
        self.sync((w.id, self._cells_of(w)) for w in workers)

    def _cells_of(self, w: WorkerSnapshot) -> dict[str, Cell]:
        style = lambda name: part_style(self, name)  # noqa: E731
        return {
            "id": w.id,
            "pid": fmt.plain(w.pid),
            "state": Text(w.state.value, style(f"state--{w.state.value}")),
            "handled": fmt.count(w.handled),
            "rate": fmt.rate(w.rate),
            "failed": Text(fmt.count(w.failed), style("workers--failed") if w.failed else ""),
            "cpu": fmt.percent(w.cpu_percent),
            "rss": fmt.megabytes(w.rss),
            "restarts": str(w.restarts),
            "debug": Text("D", style("workers--debug")) if w.debug else "",
            "reason": w.reason,
            "uptime": fmt.duration(w.uptime),
            "fds": fmt.plain(w.fds),
            "threads": fmt.plain(w.threads),
        }
