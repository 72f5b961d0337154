"""The operator's commands on the fleet, as a mixin of :class:`~rmqtui.ui.app.FleetApp`.

Each action picks its target from the screen (the selected route, the selected worker,
or every marked worker), calls one :class:`FleetControl` command per target and reports
the answer in the log pane and a short notification.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.message import Message

from rmqtui.engine.api import CommandResult
from rmqtui.engine.snapshot import WorkerSnapshot

from .detail import WorkerDetailScreen
from .dialogs import ConfirmScreen, PromptScreen

if TYPE_CHECKING:
    from .app import FleetApp

_LIVE_COMMANDS = frozenset({"add_worker", "remove_worker", "scale", "set_log_level"})


class OperatorActions:
    """Fleet commands for the app; expects the attributes :class:`FleetApp` sets up."""

    class ConfigSaved(Message):
        """``fleet.save_config()`` answered."""

        def __init__(self, result: CommandResult) -> None:
            super().__init__()
            self.result = result

    class ConfigReloaded(Message):
        """``fleet.reload_config()`` answered."""

        def __init__(self, result: CommandResult, replaced: str) -> None:
            super().__init__()
            self.result = result
            self.replaced = replaced

    # -- targets --------------------------------------------------------------------------------

    def _shown_worker(self: FleetApp) -> WorkerSnapshot | None:
        """The worker of the detail screen, when that screen is on top."""
        screen = self.screen
        return screen.worker if isinstance(screen, WorkerDetailScreen) else None

    def _target_route(self: FleetApp) -> str | None:
        if shown := self._shown_worker():
            return shown.route
        worker = self.selected_worker
        if self.workers_table.has_focus and worker is not None:
            return worker.route
        return self.selected_route

    def _need_worker(self: FleetApp) -> WorkerSnapshot | None:
        worker = self.selected_worker
        if worker is None:
            self._report(CommandResult.refused("no worker selected"))
        return worker

    def _targets(self: FleetApp) -> list[WorkerSnapshot]:
        """The detail screen's worker; else the marked workers, if any; else the selected one."""
        if shown := self._shown_worker():
            return [shown]
        snap = self.fleet_snapshot
        if self.marked and snap is not None:
            marked = [w for w in snap.workers if w.id in self.marked]
            if marked:
                return marked
        worker = self._need_worker()
        return [worker] if worker is not None else []

    # -- running commands -----------------------------------------------------------------------

    def _command(self: FleetApp, name: str, *args) -> CommandResult:
        result = self._call(name, *args)
        self._report(result)
        self.refresh_fleet()
        return result

    def _call(self: FleetApp, name: str, *args) -> CommandResult:
        snap = self.fleet_snapshot
        try:
            result = getattr(self.fleet, name)(*args)
        except Exception as exc:  # shown to the operator, never swallowed
            result = CommandResult.refused(f"{name} failed: {type(exc).__name__}: {exc}")
        if result.ok and name in _LIVE_COMMANDS and snap is not None:
            self._remember_live_change(name, args, snap)
        return result

    def _command_each(self: FleetApp, name: str, workers: list[WorkerSnapshot], *args) -> None:
        """One command per worker; one report for all (each refusal is still logged)."""
        if len(workers) == 1:
            self._command(name, *args, workers[0].id)
            return
        results = [self._call(name, *args, w.id) for w in workers]
        for result in results:
            if not result.ok:
                self._ui_log("WARNING", f"refused: {result.message}")
        done = sum(1 for r in results if r.ok)
        self._report(CommandResult(done == len(results),
                                   f"{name.replace('_', ' ')}: {done} of {len(results)} marked workers"))
        self.refresh_fleet()

    def _report(self: FleetApp, result: CommandResult, suffix: str = "") -> None:
        message = result.message + suffix
        self.notify(message, severity="information" if result.ok else "error",
                    title="done" if result.ok else "refused", timeout=3 if result.ok else 6)
        self._ui_log("INFO" if result.ok else "WARNING", message if result.ok else f"refused: {message}")

    def _remember_live_change(self: FleetApp, name: str, args: tuple, snap) -> None:
        # What R would undo: counts and levels changed here since the file was last read or written.
        if name == "set_log_level":
            level, worker = args[0], (args[1] if len(args) > 1 else None)
            self.live_levels[worker or "fleet"] = level
            return
        route = args[0]
        before = snap.route(route)
        if before is not None:
            self.live_desired.setdefault(route, before.desired)

    def live_changes(self) -> list[str]:
        """The live changes a reload would replace, in words ("sensor-data: 5 workers, was 3")."""
        changes = []
        snap = self.fleet_snapshot
        for route, was in self.live_desired.items():
            now = snap.route(route) if snap is not None else None
            if now is not None and now.desired != was:
                changes.append(f"{route}: {now.desired} workers (was {was})")
        for target, level in self.live_levels.items():
            changes.append(f"{target} log level {level}")
        return changes

    # -- actions --------------------------------------------------------------------------------

    def action_add_worker(self: FleetApp) -> None:
        route = self._target_route()
        if route is None:
            self._report(CommandResult.refused("no route selected"))
            return
        self._command("add_worker", route)

    def action_remove_worker(self: FleetApp) -> None:
        worker = self.selected_worker
        if self.workers_table.has_focus and worker is not None:
            self._command("remove_worker", worker.route, worker.id)
        elif self.selected_route is not None:
            self._command("remove_worker", self.selected_route)
        else:
            self._report(CommandResult.refused("no route selected"))

    def action_scale_route(self: FleetApp) -> None:
        route = self._target_route()
        snap = self.fleet_snapshot
        info = snap.route(route) if snap is not None and route is not None else None
        if info is None:
            self._report(CommandResult.refused("no route selected"))
            return
        question = (f"Scale [b]{route}[/b] to how many workers?\n"
                    f"Now {info.desired} wanted. 0 pauses the route: its workers finish the message in hand "
                    f"and keep their sessions, so the broker queues for them until it is scaled up again.")

        def answered(text: str | None) -> None:
            if text is None:
                return
            try:
                count = int(text.strip())
            except ValueError:
                self._report(CommandResult.refused(f"{text.strip()!r} is not a number of workers"))
                return
            if count < 0:
                self._report(CommandResult.refused("a route cannot have fewer than 0 workers"))
                return
            self._command("scale", route, count)

        self.push_screen(PromptScreen(question, str(info.desired), "number of workers, 0 pauses the route"), answered)

    def action_toggle_debug(self: FleetApp) -> None:
        workers = self._targets()
        if workers:
            level = "INFO" if all(w.debug for w in workers) else "DEBUG"
            self._command_each("set_log_level", workers, level)

    def action_toggle_fleet_debug(self: FleetApp) -> None:
        debug = self.fleet_snapshot is not None and self.fleet_snapshot.log_level == "DEBUG"
        self._command("set_log_level", "INFO" if debug else "DEBUG")

    def action_restart_worker(self: FleetApp) -> None:
        workers = self._targets()
        if workers:
            self._command_each("restart_worker", workers)

    def action_kill_worker(self: FleetApp) -> None:
        workers = self._targets()
        if not workers:
            return
        if len(workers) == 1:
            w = workers[0]
            pid = f"pid {w.pid}" if w.pid is not None else "no process"
            question = f"Kill [b]{w.id}[/b] ({pid}) with SIGKILL?\nThe supervisor restarts it."
        else:
            names = ", ".join(w.id for w in workers[:6]) + (", …" if len(workers) > 6 else "")
            question = (f"Kill [b]{len(workers)} marked workers[/b] with SIGKILL?\n{names}\n"
                        "The supervisor restarts them.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._command_each("kill_worker", workers)

        self.push_screen(ConfirmScreen(question), answered)

    def action_toggle_mark(self: FleetApp) -> None:
        worker = self._need_worker()
        if worker is None:
            return
        self.marked.symmetric_difference_update({worker.id})
        self._render()
        self.workers_table.action_cursor_down()

    def action_clear_marks(self: FleetApp) -> None:
        self.marked.clear()
        self._render()

    def action_save_config(self: FleetApp) -> None:
        self.save_config()

    @work(thread=True, group="save_config", exclusive=True, exit_on_error=False)
    def save_config(self: FleetApp) -> None:
        """Write the counts to routemq.toml off the UI loop."""
        try:
            result = self.fleet.save_config()
        except Exception as exc:  # reported in the UI
            result = CommandResult.refused(f"writing the config failed: {type(exc).__name__}: {exc}")
        self.post_message(self.ConfigSaved(result))

    def action_reload_config(self: FleetApp) -> None:
        changes = self.live_changes()
        if not changes:
            self.reload_config("")
            return
        replaced = "; ".join(changes)
        question = ("Reload routemq.toml? The file's counts and log level replace these live changes:\n"
                    + "\n".join(f"  • {c}" for c in changes))

        def answered(yes: bool | None) -> None:
            if yes:
                self.reload_config(replaced)

        self.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, group="reload_config", exclusive=True, exit_on_error=False)
    def reload_config(self: FleetApp, replaced: str) -> None:
        """Re-read routemq.toml off the UI loop (file I/O)."""
        try:
            result = self.fleet.reload_config()
        except Exception as exc:  # reported in the UI
            result = CommandResult.refused(f"reloading the config failed: {type(exc).__name__}: {exc}")
        self.post_message(self.ConfigReloaded(result, replaced))

    def on_operator_actions_config_reloaded(self: FleetApp, message: ConfigReloaded) -> None:
        suffix = ""
        if message.result.ok:
            self.live_desired.clear()
            self.live_levels.clear()
            if message.replaced:
                suffix = f" · replaced live changes: {message.replaced}"
        self._report(message.result, suffix)
        self.refresh_fleet()

    def on_operator_actions_config_saved(self: FleetApp, message: ConfigSaved) -> None:
        if message.result.ok:
            self.live_desired.clear()
            self.live_levels.clear()
        self._report(message.result, "")
        self.refresh_fleet()
