"""The worker detail screen: every figure of one worker, its charts and its own log tail."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from rmqtui.engine.snapshot import FleetSnapshot, LogRecord, WorkerSnapshot

from .. import format as fmt
from .history import FleetHistory, series
from .log_pane import LogPane, LogSearchBox

_LABEL = 16  # cells left of each chart for its name and scale
_TALL = 30  # from this screen height on, charts are two rows high


def exits_line(w: WorkerSnapshot, now: float) -> str:
    """The slot's last exits, newest first: cause, code or signal, how long ago."""
    if not w.exits:
        return "none yet"
    return "; ".join(f"{e.cause} ({fmt.exit_cause(e.code)}) {fmt.duration(max(0.0, now - e.time))} ago"
                     for e in reversed(w.exits))


def figures(w: WorkerSnapshot, now: float | None = None) -> Content:
    """Every figure of ``w``'s snapshot, grouped in short lines that fit 80 columns (``now``: unix time)."""
    handler = w.mean_handler_ms
    lines = [
        Content.assemble((w.id, "bold"), "  ", (w.state.value, "bold"),
                         f"  pid {fmt.plain(w.pid)}  up {fmt.duration(None if now is None else w.uptime_at(now))}"
                         f"  log {w.log_level}"),
        Content.assemble(("reason  ", "bold"), w.reason or "–"),
        Content.assemble(("client  ", "bold"), w.client_id),
        Content.assemble(("msgs    ", "bold"),
                         f"received {w.received}  handled {w.handled}  failed {w.failed}  "
                         f"dead-lettered {w.dead_lettered}  in flight {w.in_flight}"),
        Content.assemble(("speed   ", "bold"),
                         f"{fmt.rate(w.rate)} msg/s  handler "
                         f"{'–' if handler is None else f'{handler:.2f} ms'}/msg, {w.handler_seconds:.1f} s in all"),
        Content.assemble(("process ", "bold"),
                         f"USS {fmt.bytes_mib(w.uss)}  RSS {fmt.bytes_mib(w.rss)}  "
                         f"CPU {fmt.percent(w.cpu_percent)}{'' if w.cpu_percent is None else '%'}"),
        Content.assemble(("restarts", "bold"), f" {w.restarts}  last exit {fmt.exit_cause(w.last_exit)}  "
                         f"fds {fmt.plain(w.fds)}  threads {fmt.plain(w.threads)}"),
        Content.assemble(("exits   ", "bold"), exits_line(w, w.exits[-1].time if now is None and w.exits else now)),
    ]
    return Content("\n").join(lines)


def charts(history: FleetHistory, worker: str, now: float, width: int, height: int = 2) -> Content:
    """Rate, CPU and USS of ``worker`` over the kept history, one chart ``height`` rows high each."""
    samples = history.of(worker)
    if samples:
        now = max(now, samples[-1].time)
    span = history.keep_seconds
    if samples:
        span = min(span, max(60.0, now - samples[0].time))
    columns = max(8, width - _LABEL)
    blocks = []
    for name, field, unit in (("msg/s", "rate", ""), ("cpu%", "cpu", ""), ("USS", "uss", "MiB")):
        values = series(samples, field, columns, now, span)
        if field == "uss":
            values = [v / (1024 * 1024) for v in values]
        peak = max(values, default=0.0)
        last = values[-1] if values else 0.0
        rows = fmt.chart(values, columns, height, top=peak or None)
        left = ([f"{name:<6}{last:>7.1f}{unit[:1]}", f"max {peak:>9.1f}"] if height > 1
                else [f"{name:<5}{last:>5.0f}/{peak:<5.0f}"])
        for label, row in zip(left, rows):
            blocks.append(Content.assemble((f"{label:<{_LABEL}}", "bold"), (row, "$accent")))
    legend = "now/max, " if height == 1 else ""
    blocks.append(Content.styled(f"{'':<{_LABEL}}{legend}last {fmt.duration(span)}, newest at the right",
                                 "$text-muted"))
    return Content("\n").join(blocks)


class WorkerDetailScreen(Screen[None]):
    """One worker in full; the app feeds it on every refresh through :meth:`show`."""

    BINDINGS = [
        Binding("escape,backspace", "close", "Back", id="detail_close", tooltip="Back to the fleet"),
    ]

    def __init__(self, worker_id: str, records: Iterable[LogRecord], snap: FleetSnapshot,
                 history: FleetHistory) -> None:
        super().__init__()
        self.worker_id = worker_id
        self._initial = list(records)
        self._first = (snap, history)
        self.worker: WorkerSnapshot | None = None

    def compose(self) -> ComposeResult:
        self.figures = Static(id="detail-figures")
        self.charts = Static(id="detail-charts")
        self.log_pane = LogPane(id="detail-log")
        self.search_box = LogSearchBox(self.log_pane, id="detail-search")
        yield self.figures
        yield self.charts
        yield self.search_box
        yield self.log_pane
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.log_pane.show_only(self.worker_id)
        self.log_pane.add(self._initial)
        self._initial = []
        self.show(*self._first, [])
        self.log_pane.focus()
        self._title()

    def show(self, snap: FleetSnapshot, history: FleetHistory, records: list[LogRecord]) -> None:
        """Render the worker as of ``snap`` and append its new log records."""
        worker = next((w for w in snap.workers if w.id == self.worker_id), None)
        if worker is not None:
            self.worker = worker
            self.figures.update(figures(worker, snap.time))
        elif self.worker is not None:
            self.figures.update(Content.assemble(figures(self.worker, snap.time), "\n",
                                                 ("no longer in the fleet (figures as last seen)", "$warning")))
        else:
            self.figures.update(Content.styled(f"{self.worker_id} is not in the fleet", "$warning"))
        height = 2 if self.size.height >= _TALL else 1
        self.charts.update(charts(history, self.worker_id, snap.time, self.size.width - 2, height))
        if records:
            self.log_pane.add(records)

    def _title(self) -> None:
        self.log_pane.border_title = Content(self.log_pane.describe())

    @on(LogPane.ViewChanged)
    def _log_view_changed(self) -> None:
        self._title()

    def action_close(self) -> None:
        self.dismiss(None)
