"""The command palette provider: the same fleet actions as the keys."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

PALETTE_ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("Add worker", "add_worker", "Add a worker to the selected route"),
    ("Remove worker", "remove_worker", "Drain a worker of the selected route"),
    ("Toggle debug (worker)", "toggle_debug", "Debug logging on/off for the selected worker"),
    ("Toggle debug (fleet)", "toggle_fleet_debug", "Debug logging on/off for every worker"),
    ("Worker details", "show_detail", "Every figure, charts and the log of the selected worker"),
    ("Scale route", "scale_route", "Set the worker count of the selected route (0 pauses it)"),
    ("Mark worker", "toggle_mark", "Mark/unmark the selected worker for r, x and d"),
    ("Unmark all workers", "clear_marks", "Clear every mark"),
    ("Sort workers: next column", "sort_column(1)", "Sort by the column to the right"),
    ("Sort workers: previous column", "sort_column(-1)", "Sort by the column to the left"),
    ("Invert sort", "invert_sort", "Reverse the order of the workers"),
    ("Restart worker", "restart_worker", "Drain and restart the selected worker"),
    ("Kill worker", "kill_worker", "SIGKILL the selected worker (asks first)"),
    ("Write config", "save_config", "Write the worker counts to routemq.toml"),
    ("Reload config", "reload_config", "Re-read routemq.toml: worker counts and log level apply live"),
    ("Filter workers", "filter", "Filter the workers by id or state"),
    ("Search the log", "find", "Show only the log lines containing a text (focus the log pane first)"),
    ("Toggle all routes", "toggle_all_routes", "Workers of every route, or of the selected one"),
    ("Toggle log: selected worker only", "toggle_log_filter", "Log of the selected worker, or of everything"),
    ("Show keys", "help", "List every key"),
    ("Quit", "quit", "Drain the fleet and quit"),
)


class FleetCommands(Provider):
    """Offers every fleet action of the main screen in the command palette."""

    async def discover(self) -> Hits:
        for title, action, help_text in PALETTE_ACTIONS:
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in PALETTE_ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action), help=help_text)
