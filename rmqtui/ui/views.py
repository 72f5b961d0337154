"""Actions that change what the main screen shows, as a mixin of :class:`~rmqtui.ui.app.FleetApp`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding

from rmqtui.engine.api import CommandResult

from .dialogs import HelpScreen

if TYPE_CHECKING:
    from .app import FleetApp

NAVIGATION_HELP = (
    ("tab / shift+tab", "Move between routes, workers and log"),
    ("↑ ↓ pgup pgdn home end", "Move the cursor (log pane: scroll; end follows)"),
    ("enter", "Route: show its workers; worker: its detail screen (esc back)"),
    ("p", "Log pane: pause / resume (scrolling up also stops following)"),
    ("v", "Log pane: lowest level shown (DEBUG, INFO, WARNING, ERROR)"),
    ("/ in the log pane", "Search the log: only matching lines; esc clears"),
    ("ctrl+p", "Command palette (the same actions)"),
)


class ViewActions:
    """Which workers show, in which order, which log lines, and the key help."""

    def action_toggle_all_routes(self: FleetApp) -> None:
        self.all_routes = not self.all_routes
        self._render()

    def action_toggle_log_filter(self: FleetApp) -> None:
        if not self.log_selected_only and self.selected_worker is None:
            self._report(CommandResult.refused("no worker selected"))
            return
        self.log_selected_only = not self.log_selected_only
        if self.log_selected_only:
            self._follow_log()
        else:
            self.log_pane.show_only(None)
        self._titles()

    def action_sort_column(self: FleetApp, step: int) -> None:
        """Sort the workers by the shown column left (-1) or right (+1) of the current one."""
        keys = self.workers_table.shown_keys
        index = keys.index(self.sort_key) if self.sort_key in keys else 0
        self.sort_key = keys[(index + step) % len(keys)]
        self.sort_reverse = False
        self._render()

    def action_invert_sort(self: FleetApp) -> None:
        self.sort_reverse = not self.sort_reverse
        self._render()

    def action_help(self: FleetApp) -> None:
        rows = [(b.key_display or b.key, b.tooltip or b.description) for b in self._fleet_bindings()
                if b.id != "interrupt"]
        rows.append(("ctrl+c", "Like q: drain the fleet and quit; a second ctrl+c forces"))
        self.push_screen(HelpScreen([*rows, *NAVIGATION_HELP]))

    def _fleet_bindings(self: FleetApp) -> list[Binding]:
        return [b for b in self.BINDINGS if isinstance(b, Binding)]
