"""The status lines at the top: broker, group, uptime, totals, worker counts, debug, host."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from rmqtui.engine.snapshot import BrokerState, FleetSnapshot, WorkerState

from .. import format as fmt
from ..headless import quit_summary  # noqa: F401 - the TUI prints the same lines as headless
from .routes_table import subscribed_by_route

_BROKER_STYLE = {
    BrokerState.UP: "$success",
    BrokerState.STARTING: "$warning",
    BrokerState.RESTARTING: "$warning",
    BrokerState.DOWN: "$error",
    BrokerState.AUTH_FAILED: "$error",
    BrokerState.STOPPED: "$text-muted",
}


class StatusBar(Static):
    """Two lines summing up the fleet; while stopping, the second line shows drain progress."""

    _lines: Content | None = None  # what the bar shows, to skip repainting it unchanged

    def show(self, snap: FleetSnapshot, *, quitting: bool = False) -> None:
        """Render ``snap``."""
        b = snap.broker
        kind = "embedded" if b.embedded else "external"
        broker = Content.assemble(
            ("broker ", "bold"), b.address, " ", (b.state.value, _BROKER_STYLE.get(b.state, "")),
            f" ({kind}, {b.protocol})",
            (f" {b.reason}", "$error") if b.reason else "",
        )
        line1 = Content.assemble(
            broker, "  ", ("group ", "bold"), snap.group, "  ", ("host ", "bold"), snap.hostname or "?",
        )
        if snap.stopping or quitting:
            live = [w for w in snap.workers if w.pid is not None]
            draining = sum(1 for w in live if w.state is WorkerState.DRAINING)
            line2 = Content.assemble(
                ("stopping: ", "bold $warning"),
                f"{draining} draining, {len(live)} left",
                ("  (q or ctrl+c again forces exit)", "$text-muted"),
            )
        else:
            debug = ("DEBUG", "bold $warning") if snap.log_level == "DEBUG" else (snap.log_level.lower(), "")
            subscribed = sum(subscribed_by_route(snap).values())
            short = subscribed < snap.desired
            line2 = Content.assemble(
                ("up ", "bold"), fmt.duration(snap.uptime), "  ",
                ("handled ", "bold"), fmt.count(snap.handled), "  ",
                fmt.rate(snap.rate), " msg/s  ",
                ("subscribed ", "bold"), (f"{subscribed}/{snap.desired}", "$warning" if short else ""), "  ",
                ("log ", "bold"), debug,
            )
        self._show(Content("\n").join([line1, line2]))

    def _show(self, content: Content) -> None:
        # Unchanged lines are not handed to Static again: an update repaints the bar, and with
        # the default layout=True it re-arranges the whole screen, every second.  The bar's
        # height is fixed in rmqtui.tcss, so no update needs a layout.
        if self._lines is None or not self._lines.is_same(content):
            self._lines = content
            self.update(content, layout=False)
