"""``rmqtui attach``: the fleet TUI on a fleet that runs in another process.

The same app and keys, on a :class:`RemoteFleet`; ``q`` detaches and leaves
the fleet running, ``S`` stops the fleet after asking, and a read-only attach
refuses every change with a visible message before any dialog opens.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textual.binding import Binding

from .engine.api import CommandResult
from .engine.control import EXIT_NO_FLEET, FleetGone, RemoteError, RemoteFleet
from .engine.runtime import RuntimePathError
from .ui import app as ui_app
from .ui.app import FleetApp
from .ui.dialogs import ConfirmScreen

_CHANGES = {"add_worker": "+", "remove_worker": "-", "kill_worker": "x", "restart_worker": "r",
            "toggle_debug": "d", "toggle_fleet_debug": "D", "save_config": "w", "reload_config": "R"}


class AttachedApp(FleetApp):
    """:class:`FleetApp` on a :class:`RemoteFleet`: quitting detaches instead of stopping the fleet."""

    CSS_PATH = str(Path(ui_app.__file__).with_name("rmqtui.tcss"))  # relative paths resolve next to this module
    BINDINGS = [
        Binding("q", "detach", "Detach", id="detach", tooltip="Detach: the fleet keeps running"),
        Binding("ctrl+c", "detach", "Detach", show=False, priority=True, id="force_quit",
                tooltip="Detach at once"),
        Binding("S", "stop_fleet", "Stop fleet", key_display="S", show=False, id="stop_fleet",
                tooltip="Drain every worker and stop the fleet (asks first)"),
    ]

    def __init__(self, fleet: RemoteFleet, **kwargs) -> None:
        super().__init__(fleet, **kwargs)
        self.remote = fleet

    def on_mount(self) -> None:
        self.call_after_refresh(self._say_attached)  # after the fleet's own records, which the first refresh adds

    def _say_attached(self) -> None:
        role = "read-only" if self.remote.read_only else "operator"
        note = f"attached to the fleet of pid {self.remote.fleet_pid} ({role}); q detaches, the fleet keeps running"
        self._ui_log("INFO", note)
        self.notify(note, title="attached", timeout=5)

    def _fleet_bindings(self) -> list[Binding]:
        mine = {b.key for b in self.BINDINGS}
        inherited = [b for b in FleetApp.BINDINGS if isinstance(b, Binding) and b.key not in mine]
        return inherited + list(self.BINDINGS)

    def refresh_fleet(self) -> None:
        if self.remote.closed and not self.quitting:
            self.exit(return_code=0, message="rmqtui: the fleet stopped; detached")
            return
        super().refresh_fleet()

    def _adapt_period(self, workers: int) -> None:
        before = self._period
        super()._adapt_period(workers)
        if self._period != before:  # no more snapshots over the socket than the screen shows
            try:
                self.remote.set_interval(self._period)
            except (ConnectionError, TimeoutError, RemoteError):
                pass  # the fleet is going; the next refresh notices and detaches

    def _read_only_refusal(self, action: str) -> bool:
        if not self.remote.read_only:
            return False
        key = _CHANGES.get(action, action)
        self._report(CommandResult.refused(f"read-only attach: '{key}' is not allowed "
                                           f"(attach without --read-only to change the fleet)"))
        return True

    def action_detach(self) -> None:
        """Leave the TUI; the fleet keeps running (unless this view already asked it to stop)."""
        self.exit(return_code=0)

    def action_stop_fleet(self) -> None:
        """Ask, then drain and stop the fleet itself (not just this view)."""
        if self._read_only_refusal("stop the fleet") or self.quitting:
            return
        question = (f"Stop the fleet of pid {self.remote.fleet_pid}?\n"
                    "Every worker drains and the fleet exits. (q only detaches.)")

        def answered(yes: bool | None) -> None:
            if yes:
                self.action_quit()

        self.push_screen(ConfirmScreen(question), answered)


def _guarded(name: str):
    parent = getattr(FleetApp, f"action_{name}")

    def action(self: AttachedApp) -> None:
        if not self._read_only_refusal(name):
            parent(self)

    action.__name__ = f"action_{name}"
    action.__doc__ = parent.__doc__
    return action


for _name in _CHANGES:
    setattr(AttachedApp, f"action_{_name}", _guarded(_name))


def run_attached(config_path: str, *, read_only: bool = False, refresh: float = 1.0) -> int:
    """Attach the TUI to the fleet of ``config_path``; returns the exit status (3: no fleet)."""
    try:
        remote = RemoteFleet(config_path, read_only=read_only)
    except (FleetGone, RuntimePathError) as exc:
        print(f"rmqtui attach: {exc}; start one with `rmqtui` or `rmqtui --no-ui`", file=sys.stderr)
        return EXIT_NO_FLEET
    app = AttachedApp(remote, refresh=refresh)
    try:
        app.run()
    finally:
        gone = remote.closed
        remote.close()
    if gone or app.quitting:
        print("rmqtui: the fleet stopped")
    else:
        print(f"rmqtui: detached; the fleet (pid {remote.fleet_pid}) runs on; `rmqtui ctl stop` stops it")
    return app.return_code if app.return_code is not None else 0


def cmd_attach(argv: list[str]) -> int:
    """``rmqtui attach``."""
    ap = argparse.ArgumentParser(prog="rmqtui attach",
                                 description="Open the TUI on a running fleet; q detaches and leaves it running.")
    ap.add_argument("-c", "--config", default="routemq.toml", help="the fleet's routemq.toml")
    ap.add_argument("--read-only", action="store_true", help="look only: every change is refused")
    args = ap.parse_args(argv)
    return run_attached(args.config, read_only=args.read_only)


COMMANDS = {"attach": cmd_attach}
