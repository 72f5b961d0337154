"""The rmqtui Textual app: one screen with routes, workers and log, driven through FleetControl."""

from __future__ import annotations

import threading
import time

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.events import Resize
from textual.message import Message
from textual.widgets import DataTable, Footer, Input

from rmqtui.engine.api import CommandResult, FleetControl
from rmqtui.engine.snapshot import FleetSnapshot, LogRecord, WorkerSnapshot

from .commands import FleetCommands
from .dialogs import ConfirmScreen, HelpScreen
from .log_pane import LogPane
from .routes_table import RoutesTable
from .status_bar import StatusBar
from .workers_table import WorkersTable

FORCED_EXIT = 130
"""Exit code when the operator forces the exit before the fleet has drained."""

_ALERT_SOURCES = ("fleet", "broker")
_SCROLLBAR = 1  # matches scrollbar-size-vertical in rmqtui.tcss

NAVIGATION_HELP = (
    ("tab / shift+tab", "Move between routes, workers and log"),
    ("↑ ↓ pgup pgdn", "Move the cursor"),
    ("enter", "Route: show its workers; worker: its log only"),
    ("ctrl+p", "Command palette (the same actions)"),
)


class FleetApp(App[None]):
    """Live view of a worker fleet; every action goes through :class:`FleetControl`."""

    CSS_PATH = "rmqtui.tcss"
    TITLE = "rmqtui"
    COMMANDS = App.COMMANDS | {FleetCommands}

    BINDINGS = [
        Binding("plus", "add_worker", "Add", key_display="+", id="add_worker",
                tooltip="Add a worker to the selected route"),
        Binding("minus", "remove_worker", "Remove", key_display="-", id="remove_worker",
                tooltip="Drain the selected worker (routes pane: top slot)"),
        Binding("d", "toggle_debug", "Debug", id="toggle_debug",
                tooltip="Debug logging on/off, selected worker"),
        Binding("D", "toggle_fleet_debug", "Fleet debug", key_display="D", show=False, id="toggle_fleet_debug",
                tooltip="Debug logging on/off, whole fleet"),
        Binding("r", "restart_worker", "Restart", id="restart_worker",
                tooltip="Drain and restart the selected worker"),
        Binding("x", "kill_worker", "Kill", id="kill_worker",
                tooltip="SIGKILL the selected worker (asks y/n first)"),
        Binding("w", "save_config", "Write", show=False, id="save_config",
                tooltip="Write counts to routemq.toml (drops comments)"),
        Binding("R", "reload_config", "Reload", key_display="R", show=False, id="reload_config",
                tooltip="Reload routemq.toml: counts, log level live"),
        Binding("slash", "filter", "Filter", key_display="/", id="filter",
                tooltip="Filter workers by id/state; enter keeps, esc clears"),
        Binding("a", "toggle_all_routes", "All", show=False, id="toggle_all_routes",
                tooltip="Workers of all routes / of the selected route"),
        Binding("l", "toggle_log_filter", "Log", show=False, id="toggle_log_filter",
                tooltip="Log of the selected worker only / of everything"),
        Binding("question_mark", "help", "Help", key_display="?", id="help", tooltip="This list of keys"),
        Binding("q", "quit", "Quit", id="quit",
                tooltip="Drain the fleet and quit; press again to force"),
        Binding("ctrl+c", "force_quit", "Force quit", show=False, priority=True, id="force_quit",
                tooltip="Quit now, without waiting for the drain"),
    ]

    class FleetStopped(Message):
        """``fleet.stop()`` returned (``error`` is set when it raised)."""

        def __init__(self, error: BaseException | None) -> None:
            super().__init__()
            self.error = error

    class ConfigSaved(Message):
        """``fleet.save_config()`` answered."""

        def __init__(self, result: CommandResult) -> None:
            super().__init__()
            self.result = result

    class ConfigReloaded(Message):
        """``fleet.reload_config()`` answered."""

        def __init__(self, result: CommandResult) -> None:
            super().__init__()
            self.result = result

    def __init__(self, fleet: FleetControl, *, refresh: float = 1.0, stop_timeout: float = 10.0) -> None:
        super().__init__()
        self.fleet = fleet
        self.refresh_interval = refresh
        self.stop_timeout = stop_timeout
        self.fleet_snapshot: FleetSnapshot | None = None
        self.selected_route: str | None = None
        self.all_routes = False
        self.log_selected_only = False
        self.worker_filter = ""
        self.quitting = False
        self._last_seq = 0
        self._engine_error: str | None = None

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Held as attributes, not queried: a modal screen may be on top when the timer fires.
        self.status_bar = StatusBar(id="status")
        self.routes_table = RoutesTable(id="routes")
        self.filter_box = Input(placeholder="filter workers by id or state (enter keeps, esc clears)", id="filter")
        self.workers_table = WorkersTable(id="workers")
        self.log_pane = LogPane(id="log")
        yield self.status_bar
        yield self.routes_table
        yield self.filter_box
        yield self.workers_table
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

    def _adapt_period(self, workers: int) -> None:
        # Redrawing the tables is most of the TUI's cost; a large fleet's process figures are
        # sampled every workers/50 s anyway, so refresh no faster than that (100 workers: 2 s).
        period = max(self.refresh_interval, workers / 50.0)
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
        self.workers_table.show(self._visible_workers(snap))
        self._titles()

    def _visible_workers(self, snap: FleetSnapshot) -> list[WorkerSnapshot]:
        workers = snap.workers if self.all_routes else snap.workers_of(self.selected_route or "")
        needle = self.worker_filter.strip().lower()
        if needle:
            workers = tuple(w for w in workers if needle in w.id.lower() or needle in w.state.value)
        return list(workers)

    def _titles(self) -> None:
        scope = "all routes" if self.all_routes else (self.selected_route or "no route")
        title = f"workers · {scope}"
        if self.worker_filter:
            title += f" · filter “{self.worker_filter}”"
        worker = self.selected_worker
        if worker and worker.reason and "reason" not in self.workers_table.shown_keys:
            # Too narrow for the reason column: the selected worker's reason goes in the title.
            title += f" │ {worker.id}: {worker.reason}"
        self.workers_table.border_title = Content(title)
        only = self.log_pane.only
        self.log_pane.border_title = Content(f"log · {only} only" if only else "log")

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
        if not self.log_selected_only:
            self.action_toggle_log_filter()

    def _follow_log(self) -> None:
        if self.log_selected_only:
            worker = self.selected_worker
            self.log_pane.show_only(worker.id if worker else "\0none")
            self._titles()

    # -- commands -----------------------------------------------------------------------------

    def _target_route(self) -> str | None:
        worker = self.selected_worker
        if self.workers_table.has_focus and worker is not None:
            return worker.route
        return self.selected_route

    def _need_worker(self) -> WorkerSnapshot | None:
        worker = self.selected_worker
        if worker is None:
            self._report(CommandResult.refused("no worker selected"))
        return worker

    def _command(self, name: str, *args) -> CommandResult:
        try:
            result = getattr(self.fleet, name)(*args)
        except Exception as exc:  # shown to the operator, never swallowed
            result = CommandResult.refused(f"{name} failed: {type(exc).__name__}: {exc}")
        self._report(result)
        self.refresh_fleet()
        return result

    def _report(self, result: CommandResult, suffix: str = "") -> None:
        message = result.message + suffix
        # Accepted commands show briefly: at 80x24 a toast covers part of the workers pane.
        self.notify(message, severity="information" if result.ok else "error",
                    title="done" if result.ok else "refused", timeout=3 if result.ok else 6)
        self._ui_log("INFO" if result.ok else "WARNING", message if result.ok else f"refused: {message}")

    def _ui_log(self, level: str, message: str) -> None:
        now = self.fleet_snapshot.time if self.fleet_snapshot is not None else time.time()
        self.log_pane.add([LogRecord(0, now, level, "ui", message)])

    def action_add_worker(self) -> None:
        route = self._target_route()
        if route is None:
            self._report(CommandResult.refused("no route selected"))
            return
        self._command("add_worker", route)

    def action_remove_worker(self) -> None:
        worker = self.selected_worker
        if self.workers_table.has_focus and worker is not None:
            self._command("remove_worker", worker.route, worker.id)
        elif self.selected_route is not None:
            self._command("remove_worker", self.selected_route)
        else:
            self._report(CommandResult.refused("no route selected"))

    def action_toggle_debug(self) -> None:
        if worker := self._need_worker():
            self._command("set_log_level", "INFO" if worker.debug else "DEBUG", worker.id)

    def action_toggle_fleet_debug(self) -> None:
        debug = self.fleet_snapshot is not None and self.fleet_snapshot.log_level == "DEBUG"
        self._command("set_log_level", "INFO" if debug else "DEBUG")

    def action_restart_worker(self) -> None:
        if worker := self._need_worker():
            self._command("restart_worker", worker.id)

    def action_kill_worker(self) -> None:
        worker = self._need_worker()
        if worker is None:
            return
        pid = f"pid {worker.pid}" if worker.pid is not None else "no process"
        question = f"Kill [b]{worker.id}[/b] ({pid}) with SIGKILL?\nThe supervisor restarts it."

        def answered(yes: bool | None) -> None:
            if yes:
                self._command("kill_worker", worker.id)

        self.push_screen(ConfirmScreen(question), answered)

    def action_save_config(self) -> None:
        self.save_config()

    @work(thread=True, group="save_config", exclusive=True, exit_on_error=False)
    def save_config(self) -> None:
        """Write the counts to routemq.toml off the UI loop."""
        try:
            result = self.fleet.save_config()
        except Exception as exc:  # reported in the UI
            result = CommandResult.refused(f"writing the config failed: {type(exc).__name__}: {exc}")
        self.post_message(self.ConfigSaved(result))

    def action_reload_config(self) -> None:
        self.reload_config()

    @work(thread=True, group="reload_config", exclusive=True, exit_on_error=False)
    def reload_config(self) -> None:
        """Re-read routemq.toml off the UI loop (file I/O)."""
        try:
            result = self.fleet.reload_config()
        except Exception as exc:  # reported in the UI
            result = CommandResult.refused(f"reloading the config failed: {type(exc).__name__}: {exc}")
        self.post_message(self.ConfigReloaded(result))

    def on_fleet_app_config_reloaded(self, message: ConfigReloaded) -> None:
        self._report(message.result)
        self.refresh_fleet()

    def on_fleet_app_config_saved(self, message: ConfigSaved) -> None:
        self._report(message.result, " · comments in routemq.toml are not kept" if message.result.ok else "")
        self.refresh_fleet()

    # -- view toggles -------------------------------------------------------------------------

    def action_toggle_all_routes(self) -> None:
        self.all_routes = not self.all_routes
        self._render()

    def action_toggle_log_filter(self) -> None:
        if not self.log_selected_only and self.selected_worker is None:
            self._report(CommandResult.refused("no worker selected"))
            return
        self.log_selected_only = not self.log_selected_only
        if self.log_selected_only:
            self._follow_log()
        else:
            self.log_pane.show_only(None)
        self._titles()

    def action_filter(self) -> None:
        box = self.filter_box
        box.display = True
        box.focus()

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

    def action_help(self) -> None:
        rows = [(b.key_display or b.key, b.tooltip or b.description) for b in self._fleet_bindings()]
        self.push_screen(HelpScreen([*rows, *NAVIGATION_HELP]))

    def _fleet_bindings(self) -> list[Binding]:
        return [b for b in self.BINDINGS if isinstance(b, Binding)]

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

    def action_force_quit(self) -> None:
        self.exit(return_code=FORCED_EXIT)


def run_tui(fleet: FleetControl, *, refresh: float = 1.0) -> int:
    """Run the TUI on a started fleet until the operator quits; returns the exit code.

    ``q`` drains the fleet (``fleet.stop()``) before the app exits; a forced exit
    returns :data:`FORCED_EXIT` and leaves stopping to the caller.
    """
    app = FleetApp(fleet, refresh=refresh)
    app.run()
    return app.return_code if app.return_code is not None else 1


__all__ = ["FleetApp", "run_tui", "FORCED_EXIT"]
