"""The routes pane: one row per route of routemq.toml."""

from __future__ import annotations

from rich.text import Text

from rmqtui.engine.snapshot import FleetSnapshot, RouteSnapshot, WorkerState

from .. import format as fmt
from .columns import ColumnSpec
from .keyed_table import Cell, KeyedTable, part_style


class RoutesTable(KeyedTable):
    """Routes with their worker counts, rates, totals and a throughput sparkline."""

    SPECS = (
        ColumnSpec("name", "route", 14),
        ColumnSpec("topic", "topic", 22, drop=3, flex=True, max_width=34),
        ColumnSpec("shared", "shr", 3),
        ColumnSpec("workers", "run/want", 8, right=True),
        ColumnSpec("rate", "msg/s", 6, right=True),
        ColumnSpec("handled", "handled", 7, right=True),
        ColumnSpec("failed", "failed", 6, right=True),
        ColumnSpec("skew", "skew", 4, drop=4, right=True),
        ColumnSpec("spark", "last 60s", 12, drop=1, flex=True, max_width=60),
    )
    COMPONENT_CLASSES = {"routes--short", "routes--unshared"}

    def show(self, snapshot: FleetSnapshot) -> None:
        """Update the rows from ``snapshot``."""
        subscribed = subscribed_by_route(snapshot)
        self.sync((r.name, self._cells_of(r, subscribed.get(r.name, 0))) for r in snapshot.routes)

    def _cells_of(self, route: RouteSnapshot, subscribed: int) -> dict[str, Cell]:
        spark_width = next((c.width for c in self._shown if c.key == "spark"), 0)
        workers = Text(f"{subscribed}/{route.desired}")
        if subscribed < route.desired:
            workers.stylize(part_style(self, "routes--short"))
        if route.advice is not None and route.advice != route.desired:  # the autoscaler would use another count
            workers.append(f"→{route.advice}", part_style(self, "routes--short"))
        shared = Text("yes") if route.shared else Text("no", part_style(self, "routes--unshared"))
        return {
            "name": route.name,
            "topic": route.topic,
            "shared": shared,
            "workers": workers,
            "rate": fmt.rate(route.rate),
            "handled": fmt.count(route.handled),
            "failed": fmt.count(route.failed),
            # how unevenly the broker spreads the route over its workers (wide screens)
            "skew": "" if route.skew is None else f"{route.skew:.1f}",
            "spark": fmt.sparkline(route.history, spark_width),
        }


def subscribed_by_route(snapshot: FleetSnapshot) -> dict[str, int]:
    """Workers that consume, per route: subscribed ones (a live process with the broker down does not count)."""
    counts: dict[str, int] = {}
    for w in snapshot.workers:
        if w.state is WorkerState.SUBSCRIBED:
            counts[w.route] = counts.get(w.route, 0) + 1
    return counts
