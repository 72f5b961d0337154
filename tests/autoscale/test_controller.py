"""Signals from snapshots and the controller over a fixed-data fleet (the FleetControl interface)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rmqtui.engine.api import CommandResult
from rmqtui.engine.autoscale import AutoscaleController, AutoscaleSettings, Policy, route_signals
from rmqtui.engine.broker_sys import BrokerStats
from rmqtui.engine.snapshot import (BrokerSnapshot, BrokerState, FleetSnapshot, RouteSnapshot, WorkerSnapshot,
                                    WorkerState)


def snapshot(t: float, desired: int, seconds: list[float], *, handled: int = 0, in_flight: int = 0,
             state: WorkerState = WorkerState.SUBSCRIBED) -> FleetSnapshot:
    workers = tuple(WorkerSnapshot(id=f"r/{i}", route="r", slot=i, client_id=f"c-{i}", pid=100 + i, state=state,
                                   handled=handled, handler_seconds=s, in_flight=in_flight)
                    for i, s in enumerate(seconds))
    route = RouteSnapshot(name="r", topic="t/{x}", filter="$share/g/t/+", shared=True, qos=1, desired=desired,
                          running=len(seconds))
    return FleetSnapshot(time=t, started=0.0, group="g", config_path="x.toml",
                         broker=BrokerSnapshot("127.0.0.1", 1883, True, BrokerState.UP), routes=(route,),
                         workers=workers)


def test_busy_is_handler_seconds_per_second_per_worker():
    s = route_signals(snapshot(0, 2, [0.0, 0.0]), snapshot(10, 2, [9.0, 3.0]), "r")
    assert abs(s.busy - 0.6) < 1e-9, f"(0.9 + 0.3) / 2 = 0.6, got {s.busy}"
    assert route_signals(snapshot(0, 2, [0, 0]), snapshot(0, 2, [1, 1]), "r").busy is None, "no interval yet"
    assert route_signals(snapshot(0, 1, [0]), snapshot(1, 1, [0]), "nope") is None, "unknown route"


def test_a_worker_stuck_in_one_long_call_counts_as_busy():
    s = route_signals(snapshot(0, 1, [0.0], in_flight=1), snapshot(10, 1, [0.0], in_flight=1), "r")
    assert s.busy == 1.0, f"in flight the whole window: {s.busy}"


def test_broken_slot_is_named():
    s = route_signals(snapshot(0, 1, [0.0]), snapshot(1, 1, [0.0], state=WorkerState.CRASHLOOP), "r")
    assert s.broken == "r/0", f"{s}"


@dataclass
class FixedFleet:
    """Serves scripted snapshots and records scale() calls, like the fixed-data fleet of the UI tests."""

    snaps: list
    calls: list = field(default_factory=list)

    def snapshot(self) -> FleetSnapshot:
        return self.snaps.pop(0) if len(self.snaps) > 1 else self.snaps[0]

    def scale(self, route: str, count: int) -> CommandResult:
        self.calls.append((route, count))
        return CommandResult.accepted(f"{route}: {count}")


def busy_run(desired: int, busy: float, times: range) -> list[FleetSnapshot]:
    return [snapshot(float(t), desired, [busy * t] * desired, handled=t) for t in times]


def run_controller(mode: str, busy: float, rounds: int = 12, **kw) -> tuple[FixedFleet, AutoscaleController]:
    """``rounds`` steps, one per second of scripted snapshots, with a 5 s window and no host CPU unless given."""
    fleet = FixedFleet(busy_run(2, busy, range(rounds)))
    kw.setdefault("host_cpu", lambda: None)
    ctl = AutoscaleController(fleet, {"r": AutoscaleSettings(mode, 1, 6)}, policy=Policy(window=5), **kw)
    for _ in range(rounds):
        ctl.step()
    return fleet, ctl


def test_on_mode_scales_and_logs_the_decision():
    fleet, ctl = run_controller("on", 0.9)
    assert fleet.calls and fleet.calls[0] == ("r", 3), f"ceil(2 * 0.9 / 0.6) = 3: {fleet.calls}"
    applied = [d for d in ctl.history if d.applied]
    assert applied and applied[0].recommended == 3 and "busy 90%" in applied[0].reason, f"{list(ctl.history)}"
    rec = ctl.recommendations()[0]
    assert (rec.route, rec.mode, rec.reason) == ("r", "on", "busy"), f"{rec}"
    assert ctl.state()[0]["route"] == "r", "JSON-able state for the TUI and --json"


def test_suggest_mode_never_scales():
    fleet, ctl = run_controller("suggest", 0.95)
    assert fleet.calls == [], f"suggest must not act: {fleet.calls}"
    assert ctl.latest()["r"].recommended == 4 and ctl.latest()["r"].action == "up", f"{ctl.latest()}"


def test_broker_store_growth_reaches_the_core():
    store = iter(range(0, 10_000, 100))
    _, ctl = run_controller("suggest", 0.5, broker_stats=lambda: BrokerStats(store_messages=next(store)))
    d = ctl.latest()["r"]
    assert d.action == "up" and "backlog +100/s" in d.reason, f"{d}"


def test_host_cpu_guard_reaches_the_core():
    fleet, ctl = run_controller("on", 0.95, host_cpu=lambda: 0.99)
    assert fleet.calls == [] and "CPU-bound" in ctl.latest()["r"].reason, f"{ctl.latest()}"


def test_share_skew():
    from dataclasses import replace

    from rmqtui.engine.skew import share_skew

    def with_received(t: float, received: list[int]) -> FleetSnapshot:
        snap = snapshot(t, len(received), [0.0] * len(received))
        return replace(snap, workers=tuple(replace(w, received=n) for w, n in zip(snap.workers, received)))

    even = share_skew(with_received(0, [0, 0]), with_received(1, [50, 50]), "r")
    assert even == 0.0, f"an even split has no skew: {even}"
    skewed = share_skew(with_received(0, [0, 0, 0]), with_received(1, [60, 30, 0]), "r")
    assert abs(skewed - 1.0) < 1e-9, f"60 of a mean 30: skew 1.0, got {skewed}"
    assert share_skew(with_received(0, [0, 0]), with_received(1, [5, 5]), "r") is None, "too little traffic"
    assert share_skew(with_received(0, [0]), with_received(1, [500]), "r") is None, "one worker has no skew"
