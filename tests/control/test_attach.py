"""`rmqtui attach`: the TUI on a RemoteFleet; q detaches, S stops after asking, read-only refuses changes."""

from __future__ import annotations

from rmqtui.attach import AttachedApp
from rmqtui.demo import FixedFleet
from rmqtui.ui.dialogs import ConfirmScreen
from tests.ui.waiting import until

SIZE = (80, 24)


def errors(app) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


async def test_read_only_attach_refuses_changes_with_a_visible_message(served) -> None:
    fleet = FixedFleet("normal")
    app = AttachedApp(served.attach(fleet, read_only=True))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("down", "+")
        await pilot.press("-")
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen), "x asked to confirm a kill it cannot do"
        shown = errors(app)
        assert [m.split("'")[1] for m in shown] == ["+", "-", "x"], str(shown)
        assert all("read-only" in m for m in shown), str(shown)
        log = "\n".join(line.text for line in app.log_pane.lines)
        assert log.count("refused: read-only attach") == 3, log
    assert fleet.calls == [], f"a read-only attach reached the fleet: {fleet.calls}"


async def test_q_detaches_and_leaves_the_fleet_running(served) -> None:
    fleet = FixedFleet("normal")
    remote = served.attach(fleet)
    app = AttachedApp(remote)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("+")
        await pilot.pause()
        assert fleet.calls == [("add_worker", "sensor-data")], str(fleet.calls)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0, "detaching is not a failure"
    assert not [c for c in fleet.calls if c[0] == "stop"], "q stopped the fleet"
    again = served.remote(served.servers[0])
    assert len(again.snapshot().workers) == 8, "the fleet is not there after detaching"


async def test_shift_s_asks_and_stops_the_fleet_only_on_yes(served) -> None:
    fleet = FixedFleet("normal")
    app = AttachedApp(served.attach(fleet))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("S")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen), "S did not ask first"
        await pilot.press("n")
        await pilot.pause()
        assert not [c for c in fleet.calls if c[0] == "stop"], "n stopped the fleet"
        await pilot.press("S", "y")
        await until(pilot, lambda: app.return_code is not None)
    assert [c[0] for c in fleet.calls] == ["stop"], str(fleet.calls)
    assert app.return_code == 0, f"exit code {app.return_code}"


async def test_the_attached_tui_leaves_when_the_fleet_goes(served) -> None:
    app = AttachedApp(served.attach(FixedFleet("normal")), refresh=0.05)
    async with app.run_test(size=SIZE) as pilot:
        served.servers[0].close()
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0, "the app did not leave when the fleet went away"
