"""The UI pilot scenarios of tests/ui, run again with the TUI on a RemoteFleet over the control socket.

Each scenario builds its app with ``FleetApp(fleet, ...)``; here that name is
patched so the app gets a RemoteFleet that talks to ``fleet`` served on a real
unix socket, while the scenario keeps asserting on the fleet itself.
"""

from __future__ import annotations

import pytest

from rmqtui.ui.app import FleetApp
from tests.ui import test_keys, test_live
from tests.ui.test_live import fleet  # noqa: F401  (the real-engine fixture, reused)

#: Scenarios that change the in-process fleet behind the app's back and refresh in the same
#: instant, or make the in-process snapshot() raise: they test the local wiring, not the keys.
LOCAL_ONLY = {
    "test_refresh_keeps_the_cursor_on_its_worker",
    "test_refresh_updates_cells_in_place_without_clearing",
    "test_a_failing_snapshot_is_reported_once_and_the_ui_keeps_running",
}
KEY_SCENARIOS = sorted(name for name in vars(test_keys) if name.startswith("test_") and name not in LOCAL_ONLY)
LIVE_SCENARIOS = sorted(name for name in vars(test_live) if name.startswith("test_"))


@pytest.fixture
def attached_apps(served, monkeypatch):
    """Patch FleetApp in the scenario modules: every app gets a RemoteFleet of the fleet it was given."""
    made: list[FleetApp] = []

    def remote_app(fleet, **kwargs):
        app = FleetApp(served.attach(fleet), **kwargs)
        made.append(app)
        return app

    for module in (test_keys, test_live):
        monkeypatch.setattr(module, "FleetApp", remote_app)
    return made


def _kwargs(name: str) -> list[dict]:
    return [{"width": 80}, {"width": 160}] if name == "test_narrow_columns_collapse_first_and_essentials_fit" else [{}]


@pytest.mark.parametrize("name,kwargs", [(n, k) for n in KEY_SCENARIOS for k in _kwargs(n)])
async def test_key_scenario_on_a_remote_fleet(name, kwargs, attached_apps) -> None:
    await getattr(test_keys, name)(**kwargs)
    assert attached_apps, "the scenario built no app on a RemoteFleet"
    assert all(app.fleet.__class__.__name__ == "RemoteFleet" for app in attached_apps), "an app ran in-process"


@pytest.mark.parametrize("name", LIVE_SCENARIOS)
async def test_live_scenario_on_a_remote_fleet(name, fleet, attached_apps) -> None:  # noqa: F811
    await getattr(test_live, name)(fleet)
    assert attached_apps and all(app.fleet.__class__.__name__ == "RemoteFleet" for app in attached_apps), \
        "the scenario did not run on a RemoteFleet"
