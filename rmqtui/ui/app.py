"""The rmqtui Textual app: one screen with routes, workers and log, driven through FleetControl."""

from __future__ import annotations

import sys
import threading
import time

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.events import Resize
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input

from rmqtui.engine.api import FleetControl
from rmqtui.engine.snapshot import FleetSnapshot, LogRecord, WorkerSnapshot

from .actions import OperatorActions
from .commands import FleetCommands
from .detail import WorkerDetailScreen
from .history import FleetHistory
from .log_pane import LogPane, LogSearchBox
from .routes_table import RoutesTable
from .status_bar import StatusBar, quit_summary
from .views import ViewActions
from .workers_table import WorkersTable, sort_workers

FORCED_EXIT = 130
DETACH_EXIT = 254  # the app's own code for "detach": the caller keeps the fleet running headless
"""Exit code when the operator forces the exit before the fleet has drained."""

_ALERT_SOURCES = ("fleet", "broker")
WORKERS_PER_SECOND = 500
"""Fleets up to this size refresh every second; larger ones every workers/500 s (see _adapt_period)."""
_SCROLLBAR = 1  # matches scrollbar-size-vertical in rmqtui.tcss



class FleetApp(ViewActions, OperatorActions, App[None]):
    """Live view of a worker fleet; every action goes through :class:`FleetControl`."""

    CSS_PATH = "rmqtui.tcss"
    TITLE = "rmqtui"
    COMMANDS = App.COMMANDS | {FleetCommands}

    BINDINGS = [
        # Help and quit come first: a narrow footer cuts from the right and must keep them.
        Binding("question_mark", "help", "Help", key_display="?", id="help", tooltip="This list of keys"),
        Binding("q", "quit", "Quit", id="quit",
                tooltip="Drain the fleet and quit; press again to force (Q detaches instead)"),
        Binding("Q", "detach", "Detach", key_display="Q", show=False, id="detach_owner",
                tooltip="Detach: quit the TUI, the fleet keeps running headless (rmqtui attach comes back)"),
        Binding("plus", "add_worker", "Add", key_display="+", id="add_worker",
                tooltip="Add a worker to the selected route"),
        Binding("minus", "remove_worker", "Remove", key_display="-", id="remove_worker",
                tooltip="Drain the selected worker (routes pane: top slot)"),
        Binding("d", "toggle_debug", "Debug", id="toggle_debug",
                tooltip="Debug logging on/off, selected worker"),
        Binding("D", "toggle_fleet_debug", "Fleet debug", key_display="D", show=False, id="toggle_fleet_debug",
                tooltip="Debug logging on/off, whole fleet"),
        Binding("s", "scale_route", "Scale", id="scale_route",
                tooltip="Scale the selected route to N workers (0 pauses it: the broker queues for its sessions)"),
        Binding("r", "restart_worker", "Restart", id="restart_worker",
                tooltip="Drain and restart the selected (or marked) workers"),
        Binding("x", "kill_worker", "Kill", id="kill_worker",
                tooltip="SIGKILL the selected (or marked) workers (asks y/n first)"),
        Binding("space", "toggle_mark", "Mark", id="toggle_mark",
                tooltip="Mark/unmark the worker: r, x and d then act on every marked worker"),
        Binding("U", "clear_marks", "Unmark all", key_display="U", show=False, id="clear_marks",
                tooltip="Unmark every worker"),
        Binding("less_than_sign", "sort_column(-1)", "Sort", key_display="<", show=False, id="sort_left",
                tooltip="Sort workers by the column to the left"),
        Binding("greater_than_sign", "sort_column(1)", "Sort", key_display=">", id="sort_right",
                tooltip="Sort workers by the column to the right (< goes left)"),
        Binding("I", "invert_sort", "Invert sort", key_display="I", show=False, id="invert_sort",
                tooltip="Invert the sort order"),
        Binding("w", "save_config", "Write", show=False, id="save_config",
                tooltip="Write counts to routemq.toml (comments kept)"),
        Binding("R", "reload_config", "Reload", key_display="R", show=False, id="reload_config",
                tooltip="Reload routemq.toml: counts, log level live (says which live changes it undoes)"),
        # A priority binding, so "/" moves the focus before the keys typed after it are handed
        # to a widget: fast or pasted search text must never run as commands ("-" drains).
        Binding("slash", "find", "Find", key_display="/", id="filter", priority=True,
                tooltip="Filter workers by id/state (log pane: search the log); enter keeps, esc clears"),
        Binding("a", "toggle_all_routes", "All", show=False, id="toggle_all_routes",
                tooltip="Workers of all routes / of the selected route"),
        Binding("l", "toggle_log_filter", "Log", show=False, id="toggle_log_filter",
                tooltip="Log of the selected worker only / of everything"),
        Binding("ctrl+c", "interrupt", "Interrupt", show=False, priority=True, id="interrupt",
                tooltip="Like q: drain and quit; a second ctrl+c forces"),
    ]

    class FleetStopped(Message):
        """``fleet.stop()`` returned (``error`` is set when it raised)."""

        def __init__(self, error: BaseException | None) -> None:
            super().__init__()
            self.error = error

    def __init__(self, fleet: FleetControl, *, refresh: float = 1.0, stop_timeout: float = 10.0,
                 detachable: bool = False) -> None:
        super().__init__()
        self.fleet = fleet
        self.detachable = detachable  # started from a terminal by `rmqtui`, which can keep the fleet running
        self.refresh_interval = refresh
        self.stop_timeout = stop_timeout
        self.fleet_snapshot: FleetSnapshot | None = None
        self.selected_route: str | None = None
        self.all_routes = False
        self.log_selected_only = False
        self.worker_filter = ""
        self.quitting = False
        self.sort_key = "id"  # a column key of WorkersTable.SPECS; "id" is the route/slot order
        self.sort_reverse = False
        self.marked: set[str] = set()
        self.live_desired: dict[str, int] = {}  # route -> desired count before this session changed it
        self.live_levels: dict[str, str] = {}  # "fleet" or a worker id -> level set here
        self.history = FleetHistory()
        self._last_seq = 0
        self._engine_error: str | None = None
        self._pane_titles: dict[str | None, str] = {}  # widget id -> border title last set

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Held as attributes, not queried: a modal screen may be on top when the timer fires.
        self.status_bar = StatusBar(id="status")
        self.routes_table = RoutesTable(id="routes")
        self.filter_box = Input(placeholder="filter workers by id or state (enter keeps, esc clears)", id="filter")
        self.workers_table = WorkersTable(id="workers")
        self.log_pane = LogPane(id="log")
        self.log_search = LogSearchBox(self.log_pane, id="log-search")
        yield self.status_bar
        yield self.routes_table
        yield self.filter_box
        yield self.workers_table
        yield self.log_search
        yield self.log_pane
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.routes_table.border_title = "routes"
        self.log_pane.border_title = "log"
        self._fit(self.size.width)
        self._period = self.refresh_interval
        self._timer = self.set_interval(self._period, self.refresh_fleet, name="refresh_fleet")
        self.refresh_fleet()
        self.workers_table.focus()

    def on_resize(self, event: Resize) -> None:
        if self._fit(event.size.width):
            self._render()

    def _fit(self, width: int) -> bool:
        """Pick the columns that fit; narrow columns are the first to go."""
        routes = self.routes_table.fit(width - _SCROLLBAR)
        workers = self.workers_table.fit(width - _SCROLLBAR)
        return routes or workers

    # -- live data ----------------------------------------------------------------------------

    def refresh_fleet(self) -> None:
        """Pull one snapshot and the new log records, and update every pane by diff."""
        try:
            snap = self.fleet.snapshot()
            records = self.fleet.logs_since(self._last_seq)
        except Exception as exc:  # the engine's problem, reported once; the UI keeps running
            message = f"{type(exc).__name__}: {exc}"
            if message != self._engine_error:
                self._engine_error = message
                self.notify(message, title="fleet snapshot failed", severity="error")
                self._ui_log("ERROR", f"fleet snapshot failed: {message}")
            return
        self._engine_error = None
        self.fleet_snapshot = snap
        self.history.record(snap)
        self.marked &= {w.id for w in snap.workers}
        self._adapt_period(len(snap.workers))
        if self.selected_route is None or snap.route(self.selected_route) is None:
            self.selected_route = snap.routes[0].name if snap.routes else None
        with self.batch_update():
            self._render()
            if records:
                self._last_seq = records[-1].seq
                self.log_pane.add(records)
                for record in records:
                    if record.level == "ERROR" and record.source in _ALERT_SOURCES:
                        self.notify(record.message, title=record.source, severity="error", timeout=10)
            if isinstance(self.screen, WorkerDetailScreen):
                self.screen.show(snap, self.history, [r for r in records if r.source == self.screen.worker_id])

    def _ui_log(self, level: str, message: str) -> None:
        now = self.fleet_snapshot.time if self.fleet_snapshot is not None else time.time()
        self.log_pane.add([LogRecord(0, now, level, "ui", message)])

    def _adapt_period(self, workers: int) -> None:
        # Only changed cells are drawn again, so the screen costs little; what grows with the fleet
        # is building and diffing every worker's row (and, attached, encoding and decoding every
        # worker's snapshot).  Every second up to WORKERS_PER_SECOND workers (about 3 % of a core at
        # 500, measured); beyond, the period grows so that cost stays flat (1000 workers: 2 s).
        period = max(self.refresh_interval, workers / WORKERS_PER_SECOND)
        if abs(period - self._period) >= 0.25:
            self._period = period
            self._timer.stop()
            self._timer = self.set_interval(period, self.refresh_fleet, name="refresh_fleet")

    def _render(self) -> None:
        snap = self.fleet_snapshot
        if snap is None:
            return
        self.status_bar.show(snap, quitting=self.quitting)
        self.routes_table.show(snap)
        self.workers_table.mark_sort_column(None if self.sort_key == "id" else self.sort_key)
        self.workers_table.show(self._visible_workers(snap), self.marked, snap.time)
        self._titles()

    def _visible_workers(self, snap: FleetSnapshot) -> list[WorkerSnapshot]:
        workers = snap.workers if self.all_routes else snap.workers_of(self.selected_route or "")
        needle = self.worker_filter.strip().lower()
        if needle:
            workers = tuple(w for w in workers if needle in w.id.lower() or needle in w.state.value)
        return sort_workers(workers, self.sort_key, self.sort_reverse)

    def _titles(self) -> None:
        scope = "all routes" if self.all_routes else (self.selected_route or "no route")
        title = f"workers · {scope}"
        if self.worker_filter:
            title += f" · filter “{self.worker_filter}”"
        if self.sort_key != "id" or self.sort_reverse:
            label = next(s.label for s in self.workers_table.SPECS if s.key == self.sort_key)
            title += f" · by {label}{' inverted' if self.sort_reverse else ''}"
        if self.marked:
            title += f" · {len(self.marked)} marked"
        worker = self.selected_worker
        if worker and worker.reason and "reason" not in self.workers_table.shown_keys:
            # Too narrow for the reason column: the selected worker's reason goes in the title.
            title += f" │ {worker.id}: {worker.reason}"
        self._retitle(self.workers_table, title)
        self._retitle(self.log_pane, self.log_pane.describe())

    def _retitle(self, widget: Widget, title: str) -> None:
        # Setting a border title repaints the whole pane, even when the title is the same.
        if self._pane_titles.get(widget.id) != title:
            self._pane_titles[widget.id] = title
            widget.border_title = Content(title)

    @property
    def selected_worker(self) -> WorkerSnapshot | None:
        """The worker under the cursor of the workers pane, as of the last snapshot."""
        key = self.workers_table.cursor_key
        if key is None or self.fleet_snapshot is None:
            return None
        return next((w for w in self.fleet_snapshot.workers if w.id == key), None)

    # -- selection ----------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#routes")
    def _route_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value != self.selected_route:
            self.selected_route = event.row_key.value
            self._render()
            self._follow_log()

    @on(DataTable.RowSelected, "#routes")
    def _route_selected(self, event: DataTable.RowSelected) -> None:
        self.workers_table.focus()

    @on(DataTable.RowHighlighted, "#workers")
    def _worker_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._titles()
        self._follow_log()

    @on(DataTable.RowSelected, "#workers")
    def _worker_selected(self, event: DataTable.RowSelected) -> None:
        self.action_show_detail()

    def action_show_detail(self) -> None:
        """Open the detail screen of the selected worker."""
        worker = self._need_worker()
        if worker is None or self.fleet_snapshot is None:
            return
        self.push_screen(WorkerDetailScreen(worker.id, self.log_pane.records_of(worker.id),
                                            self.fleet_snapshot, self.history))

    def _follow_log(self) -> None:
        if self.log_selected_only:
            worker = self.selected_worker
            self.log_pane.show_only(worker.id if worker else "\0none")
            self._titles()

    # -- view toggles (the others are in ViewActions) ----------------------------------------

    @on(LogPane.ViewChanged, "#log")
    def _log_view_changed(self) -> None:
        self._titles()

    def action_find(self) -> None:
        """``/``: typed into a focused input, else search the log pane in focus, else filter workers."""
        focused = self.focused
        if isinstance(focused, Input):
            focused.insert_text_at_cursor("/")
        elif isinstance(focused, LogPane):
            focused.action_search()
        elif isinstance(self.screen, WorkerDetailScreen):
            self.screen.log_pane.action_search()
        elif self.screen is self.screen_stack[0]:
            self.action_filter()

    def action_filter(self) -> None:
        box = self.filter_box
        box.display = True
        self.set_focus(box)  # at once, see the "/" binding

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.worker_filter = event.value
        self._render()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.filter_box.display = False
        self.workers_table.focus()

    def on_key(self, event) -> None:
        box = self.filter_box
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.value = ""
            box.display = False
            self.workers_table.focus()

    def get_system_commands(self, screen):
        # The system "Quit" exits at once, skipping the drain; the palette's own "Quit" drains.
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command

    # -- quitting -----------------------------------------------------------------------------

    def action_quit(self) -> None:
        """First press: drain the fleet in the background and show progress; second: force."""
        if self.quitting:
            self.action_force_quit()
            return
        self.quitting = True
        self.notify("draining every worker; q or ctrl+c again forces the exit", title="stopping")
        # A daemon thread, not a Textual thread worker: asyncio.run() joins executor threads at
        # exit, so a forced exit would otherwise wait for the drain it means to skip.
        threading.Thread(target=self._stop_fleet, name="stop_fleet", daemon=True).start()
        self._render()

    def _stop_fleet(self) -> None:
        try:
            self.fleet.stop(self.stop_timeout)
        except Exception as exc:  # handed to the UI thread, which exits with an error
            self.post_message(self.FleetStopped(exc))
        else:
            self.post_message(self.FleetStopped(None))

    def on_fleet_app_fleet_stopped(self, message: FleetStopped) -> None:
        if message.error is not None:
            self.exit(return_code=1, message=f"stopping the fleet failed: {message.error}")
        else:
            self.exit(return_code=0)

    def action_detach(self) -> None:
        """Quit the TUI and leave the fleet running headless, when this process can (see rmqtui/detach.py)."""
        if self.quitting:
            return
        if not self.detachable:
            self.notify("this TUI cannot detach (it was not started from a terminal by `rmqtui`); "
                        "q stops the fleet", title="detach", severity="warning")
            return
        self.exit(return_code=DETACH_EXIT)

    def action_interrupt(self) -> None:
        """Ctrl-C, as headless: the first drains, the second forces."""
        self.action_quit()

    def summary(self) -> str:
        """A few lines for the terminal after quitting: uptime and the fleet's totals."""
        return quit_summary(self.fleet_snapshot)

    def action_force_quit(self) -> None:
        """Kill every worker now (through ``fleet.force()`` when the fleet has it) and exit."""
        force = getattr(self.fleet, "force", None)
        if callable(force):
            try:
                force()
            except Exception as exc:  # the exit goes on; the operator sees why the kill failed
                print(f"rmqtui: forcing the stop failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        self.exit(return_code=FORCED_EXIT)



def run_tui(fleet: FleetControl, *, refresh: float = 1.0) -> int:
    """Run the TUI on a started fleet until the operator quits; returns the exit code.

    ``q`` drains the fleet (``fleet.stop()``) before the app exits; a forced exit
    returns :data:`FORCED_EXIT` and leaves stopping to the caller.
    """
    app = FleetApp(fleet, refresh=refresh)
    app.run()
    print(app.summary())
    return app.return_code if app.return_code is not None else 1


__all__ = ["FleetApp", "run_tui", "FORCED_EXIT", "DETACH_EXIT"]
