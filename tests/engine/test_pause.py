"""Pause (scale to 0) and resume on the real core, a fake runner and a clock the test moves."""

from __future__ import annotations

import signal

from rmqtui.engine.autoscale import AutoscaleSettings, RouteScaler, RouteSignals
from rmqtui.engine.protocol import Drain, Heartbeat
from rmqtui.engine.snapshot import WorkerState
from rmqtui.engine.supervisor.fake_runner import FakeRunner
from rmqtui.engine.supervisor.slot import Phase
from rmqtui.testing.fake import FakeFleet, make_config


def beat(t: float, received: int = 0, handled: int = 0) -> Heartbeat:
    return Heartbeat(time=t, received=received, handled=handled, failed=0, dead_lettered=0, handler_seconds=0.0,
                     busy_since=None, connected=True)

ROUTE = {"name": "work", "topic": "jobs/{id}", "handler": "h:handle", "workers": 3}


def fleet_of(workers: int = 3, runner: FakeRunner | None = None) -> FakeFleet:
    f = FakeFleet(make_config([dict(ROUTE, workers=workers)]), runner=runner)
    f.start()
    return f


def states(f: FakeFleet) -> dict[str, WorkerState]:
    return {w.id: w.state for w in f.snapshot().workers}


def test_scale_to_0_pauses_every_slot_keeping_its_session_and_nothing_is_released():
    f = fleet_of()
    r = f.scale("work", 0)
    assert r.ok and "paused" in r.message
    f.advance(0)
    drains = [c[2] for c in f.runner.calls if c[0] == "send" and isinstance(c[2], Drain)]
    assert len(drains) == 3 and all(d.keep_session for d in drains), drains
    assert states(f) == {f"work/{i}": WorkerState.PAUSED for i in range(3)}
    assert not any(c[0] == "spawn" and c[2] for c in f.runner.calls), "a paused route released a session"
    f.advance(120.0)  # nothing restarts, nothing is rescued while paused
    assert states(f) == {f"work/{i}": WorkerState.PAUSED for i in range(3)}
    assert not any(c[0] == "spawn" and c[2] for c in f.runner.calls)
    snap = f.snapshot()
    assert snap.route("work").running == 0 and all(w.pid is None for w in snap.workers)
    assert all(w.exits[-1].cause == "paused" for w in snap.workers), [w.exits for w in snap.workers]


def test_resume_starts_the_same_slots_and_a_smaller_count_releases_the_highest_paused_ones():
    f = fleet_of()
    f.scale("work", 0)
    f.advance(0)
    spawned = len([c for c in f.runner.calls if c[0] == "spawn"])
    r = f.scale("work", 2)
    assert r.ok and "resume" in r.message
    f.advance(0)
    new = [c for c in f.runner.calls if c[0] == "spawn"][spawned:]
    assert ("spawn", "work/0", False) in new and ("spawn", "work/1", False) in new
    assert ("spawn", "work/2", True) in new, "the paused slot beyond the count hands its session on"
    assert f.slot("work/2") is None
    assert f.slot("work/0").phase is Phase.SERVING and f.slot("work/0").client_id.endswith("-work-0")
    assert states(f) == {"work/0": WorkerState.SUBSCRIBED, "work/1": WorkerState.SUBSCRIBED}


def test_a_pause_while_a_worker_is_starting_or_restarting_still_ends_paused_and_resume_cancels_a_pause():
    f = fleet_of(2, runner=FakeRunner(drain_exits=False))
    assert f.restart_worker("work/1").ok  # a stop in progress
    f.scale("work", 0)
    f.advance(0)
    f.end("work/0", 0)
    f.end("work/1", 0)
    assert states(f) == {"work/0": WorkerState.PAUSED, "work/1": WorkerState.PAUSED}
    f.scale("work", 2)
    f.advance(0)
    assert f.slot("work/0").phase is Phase.SERVING and f.slot("work/1").phase is Phase.SERVING
    f.scale("work", 0)  # paused, then resumed before the worker ended: it starts anew, keeping its session
    f.advance(0)
    f.scale("work", 2)
    f.advance(0)
    f.end("work/0", 0)
    f.advance(1.0)
    assert f.slot("work/0").phase is Phase.SERVING, f.slot("work/0").phase


def test_a_kill_during_the_pause_keeps_the_session_and_is_no_crash():
    f = fleet_of(1, runner=FakeRunner(drain_exits=False))
    f.scale("work", 0)
    f.advance(0)
    f.end("work/0", -signal.SIGKILL)
    slot = f.slot("work/0")
    assert slot.state is WorkerState.PAUSED and slot.restarts == 0 and not slot.crashloop
    assert not any(c[0] == "spawn" and c[2] for c in f.runner.calls)


def test_a_paused_route_survives_stop_and_a_restart_with_0_workers_in_the_file():
    f = fleet_of(2)
    f.scale("work", 0)
    f.advance(0)
    layout = f._core.layout()
    assert layout == {"work": [0, 1]}
    f.stop()
    assert states(f) == {"work/0": WorkerState.PAUSED, "work/1": WorkerState.PAUSED}
    g = FakeFleet(make_config([dict(ROUTE, workers=0)]))
    g._core.adopt(layout, *g.clock())
    g.start()
    assert states(g) == {"work/0": WorkerState.PAUSED, "work/1": WorkerState.PAUSED}
    assert not any(c[0] == "spawn" for c in g.runner.calls), "nothing released, nothing started"
    g.scale("work", 2)
    g.advance(0)
    assert [c for c in g.runner.calls if c[0] == "spawn"] == [("spawn", "work/0", False), ("spawn", "work/1", False)]


def test_a_draining_worker_keeps_counting():
    f = fleet_of(2, runner=FakeRunner(drain_exits=False))
    f.tell("work/1", beat(f.clock.wall, 10, 10))
    f.scale("work", 1)
    f.advance(0)
    assert f.slot("work/1").phase is Phase.DRAINING
    f.tell("work/1", beat(f.clock.wall + 1, 25, 24))
    w = next(w for w in f.snapshot().workers if w.id == "work/1")
    assert (w.state, w.received, w.handled) == (WorkerState.DRAINING, 25, 24)
    f.end("work/1", 0)
    assert f.snapshot().route("work").handled == 24, "the drained worker's count stays in the route's total"


def test_exit_causes_are_kept_per_slot_five_at_most():
    f = fleet_of(1)
    f.tell("work/0", beat(f.clock.wall))
    f.end("work/0", -signal.SIGKILL)
    f.advance(1.0)
    f.end("work/0", 7, tail="boom")
    f.advance(5.0)
    assert f.kill_worker("work/0").ok
    f.advance(1.0)
    exits = next(w for w in f.snapshot().workers if w.id == "work/0").exits
    assert [e.cause for e in exits] == ["killed from outside", "crashed", "killed by the operator"], exits
    assert exits[1].code == 7 and exits[1].detail == "boom" and exits[0].time <= exits[1].time
    for _ in range(4):
        f.end("work/0", 1)
        f.advance(70.0)
    exits = next(w for w in f.snapshot().workers if w.id == "work/0").exits
    assert len(exits) == 5 and exits[-1].cause == "crashed"


def test_autoscale_never_scales_a_paused_route():
    scaler = RouteScaler(AutoscaleSettings(mode="on", min=1, max=4))
    d = scaler.decide(RouteSignals(route="work", shared=True, desired=0, running=0, busy=0.99), now=100.0)
    assert d.recommended == 0 and d.action == "hold" and d.code == "paused"


def test_headless_json_carries_the_exit_causes():
    import json

    from rmqtui.headless import snapshot_json

    f = fleet_of(1)
    f.tell("work/0", beat(f.clock.wall))
    f.end("work/0", -signal.SIGKILL)
    data = json.loads(snapshot_json(f.snapshot()))
    (exits,) = [w["exits"] for w in data["workers"]]
    assert exits == [{"time": f.clock.wall, "code": -9, "cause": "killed from outside", "detail": ""}]
