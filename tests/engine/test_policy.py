"""The supervision policy on the real core, a fake runner and a clock the test moves: no process, no sleep."""

from __future__ import annotations

import signal

from rmqtui.engine.protocol import Drain, Heartbeat, Status
from rmqtui.engine.snapshot import WorkerState
from rmqtui.engine.supervisor.policy import ExitKind, RestartPolicy
from rmqtui.engine.supervisor.fake_runner import FakeRunner
from rmqtui.engine.supervisor.slot import Phase
from rmqtui.testing.fake import FakeFleet, make_config

ROUTE = {"name": "work", "topic": "jobs/{id}", "handler": "h:handle", "workers": 1}


def fleet_of(workers: int = 1, *, fleet: dict | None = None, runner: FakeRunner | None = None) -> FakeFleet:
    f = FakeFleet(make_config([dict(ROUTE, workers=workers)], fleet=fleet), runner=runner)
    f.start()
    return f


def state(f: FakeFleet, key: str = "work/0") -> WorkerState:
    return next(w for w in f.snapshot().workers if w.id == key).state


def crash(f: FakeFleet, key: str = "work/0", code: int = 1) -> None:
    """End the slot's process with ``code``, then let the backoff pass so the next one starts."""
    f.end(key, code)


def test_five_broken_exits_in_thirty_seconds_make_a_crash_loop_reported_once():
    f = fleet_of()
    for i in range(4):
        crash(f)
        assert state(f) is WorkerState.BACKOFF, f"crash {i + 1} should only back off"
        f.advance(f.slot("work/0").next_start - f.clock.mono)
    crash(f)
    assert state(f) is WorkerState.CRASHLOOP
    assert "5 failures, retry in" in f.slot("work/0").reason
    loops = [r for r in f.logs_since(0) if "crash loop" in r.message]
    assert len(loops) == 1 and loops[0].level == "ERROR", [r.message for r in loops]
    assert "5 crashes in 30s" in loops[0].message and loops[0].source == "fleet"
    f.advance(f.slot("work/0").next_start - f.clock.mono)
    crash(f)
    assert len([r for r in f.logs_since(0) if "crash loop" in r.message]) == 1, "a crash loop is reported once"


def test_a_crash_looping_slot_keeps_retrying_with_a_capped_backoff():
    f = fleet_of()
    delays = []
    for _ in range(14):
        spawns = sum(1 for c in f.runner.calls if c[0] == "spawn")
        crash(f)
        slot = f.slot("work/0")
        delays.append(slot.next_start - f.clock.mono)
        f.advance(delays[-1])
        assert sum(1 for c in f.runner.calls if c[0] == "spawn") == spawns + 1, "the slot must be retried"
    policy = RestartPolicy()
    assert max(delays) <= policy.max_backoff * (1 + policy.jitter)
    assert delays[-1] >= policy.max_backoff * (1 - policy.jitter), f"backoff should reach the cap: {delays}"
    assert delays == sorted(delays) or max(delays[8:]) - min(delays[8:]) <= 2 * policy.jitter * policy.max_backoff


def test_backoff_is_capped_and_jitter_stays_in_its_band():
    p = RestartPolicy(base_backoff=0.25, max_backoff=60.0, jitter=0.1)
    assert p.backoff(1) == 0.25 and p.backoff(2) == 0.5 and p.backoff(3) == 1.0
    assert p.backoff(30) == 60.0 and p.backoff(1000) == 60.0
    assert p.backoff(30, spread=0.0) == 54.0 and p.backoff(30, spread=1.0) == 60.0
    assert 0.225 <= p.backoff(1, spread=0.0) <= p.backoff(1, spread=1.0) <= 0.275


def test_a_kill_from_outside_while_serving_restarts_at_once_and_never_counts_toward_a_loop():
    f = fleet_of(2)
    for _ in range(20):
        first_pid = f.slot("work/0").pid
        f.end("work/0", -signal.SIGKILL)
        assert state(f) is WorkerState.CRASHED
        f.advance(RestartPolicy().external_delay)
        assert f.slot("work/0").pid not in (None, first_pid) and state(f) is WorkerState.SUBSCRIBED
    assert not f.slot("work/0").crashloop and f.slot("work/0").restarts == 20
    assert not [c for c in f.runner.calls if c[0] == "spawn" and c[2]], "an external kill must not release the slot"


def test_exit_classification():
    c = RestartPolicy.classify
    assert c(-9, subscribed=True, failed_code=3) is ExitKind.EXTERNAL
    assert c(-9, subscribed=False, failed_code=3) is ExitKind.BROKEN, "a kill during start-up is broken"
    assert c(-9, subscribed=True, failed_code=3, hung=True) is ExitKind.BROKEN, "a hang is the handler's fault"
    assert c(1, subscribed=True, failed_code=3) is ExitKind.BROKEN
    assert c(3, subscribed=True, failed_code=3) is ExitKind.FAILED


def test_the_last_serving_slot_is_never_released_but_a_crash_looping_one_with_live_peers_is():
    alone = fleet_of(1)
    for _ in range(6):
        crash(alone)
        alone.advance(alone.slot("work/0").next_start - alone.clock.mono)
    assert not [c for c in alone.runner.calls if c[0] == "spawn" and c[2]], "the route's last slot was released"

    runner = FakeRunner(lambda key, spec: [0] if spec.release_only else
                        ([1] if key == "work/1" else [Status("subscribed")]))
    pair = fleet_of(2, runner=runner)  # work/1 exits 1 at once, every time
    for _ in range(6):
        pair.advance(pair.slot("work/1").next_start - pair.clock.mono)
    assert pair.slot("work/1").crashloop
    assert [c for c in runner.calls if c == ("spawn", "work/1", True)], "its session was not handed on"
    assert pair.slot("work/0").phase is Phase.SERVING


def test_drain_escalates_to_sigterm_then_sigkill_at_the_named_timeouts():
    runner = FakeRunner(drain_exits=False)
    f = fleet_of(2, fleet={"drain_timeout": 10.0}, runner=runner)
    f.tell("work/1", Heartbeat(f.clock.wall, 0, 0, 0, 0, 0.0, None, True))
    assert f.scale("work", 1).ok
    f.advance(0)
    assert ("send", "work/1", Drain(timeout=10.0)) in runner.calls
    p = RestartPolicy(drain_timeout=10.0)
    runner.signal = lambda key, pid, sig: runner.calls.append(("signal", key, sig))  # a stuck process
    f.advance(p.drain_term_after - 0.5)
    assert ("signal", "work/1", signal.SIGTERM) not in runner.calls
    f.advance(1.0)
    assert ("signal", "work/1", signal.SIGTERM) in runner.calls
    assert ("signal", "work/1", signal.SIGKILL) not in runner.calls
    f.advance(p.drain_kill_after - p.drain_term_after)
    assert ("signal", "work/1", signal.SIGKILL) in runner.calls


def test_a_hang_is_detected_by_heartbeat_silence_and_by_a_message_stuck_in_the_handler():
    f = fleet_of(2, fleet={"hang_timeout": 5.0})
    f.tell("work/0", Heartbeat(f.clock.wall, 0, 0, 0, 0, 0.0, None, True))
    f.tell("work/1", Heartbeat(f.clock.wall, 0, 0, 0, 0, 0.0, f.clock.wall, True))  # busy from now
    f.advance(4.0)
    f.tell("work/0", Heartbeat(f.clock.wall, 0, 0, 0, 0, 0.0, None, True))
    f.tell("work/1", Heartbeat(f.clock.wall, 0, 0, 0, 0, 0.0, f.clock.wall - 4.0, True))
    assert ("signal", "work/1", signal.SIGKILL) not in f.runner.calls
    f.advance(1.5)
    assert ("signal", "work/1", signal.SIGKILL) in f.runner.calls, "stuck in one message past hang_timeout"
    f.advance(4.0)
    assert any("hung: no heartbeat" in r.message for r in f.logs_since(0) if r.source == "work/0")


def test_a_poison_message_is_recognised_after_n_crashes_on_it():
    f = fleet_of(fleet={"poison_crashes": 3})
    for n in range(3):
        f.end("work/0", 1, "ValueError", mid=77)
        if n < 2:
            assert 77 not in f.slot("work/0").poison
        f.advance(f.slot("work/0").next_start - f.clock.mono)
    assert 77 in f.slot("work/0").poison
    assert 77 in f.runner.specs["work/0"].poison_mids, "the next process must dead-letter it"
    assert sum("mid 77 crashed the worker 3 times" in r.message for r in f.logs_since(0)) == 1


def test_scale_down_retires_a_crash_looping_slot_before_a_serving_one():
    runner = FakeRunner(lambda key, spec: [0] if spec.release_only else
                        ([1] if key == "work/0" else [Status("subscribed")]))
    f = fleet_of(2, runner=runner)
    for _ in range(6):
        f.advance(f.slot("work/0").next_start - f.clock.mono)
    assert f.slot("work/0").crashloop
    assert f.scale("work", 1).ok
    f.advance(0)
    assert f.slot("work/0") is None, "the crash-looping slot leaves, after its session was released"
    assert f.slot("work/1").phase is Phase.SERVING


def test_a_dead_slot_leaves_the_pool_only_after_its_release_client_exits_0():
    releases = []

    def behave(key, spec):
        if spec.release_only:
            releases.append(key)
            return [1] if len(releases) == 1 else [0]  # the first release fails (broker down)
        return [Status("subscribed")]

    f = fleet_of(3, runner=FakeRunner(behave))
    f.end("work/2", 1)  # dead, in backoff
    assert f.scale("work", 2).ok
    f.advance(0)
    assert f.slot("work/2") is not None, "forgotten before its subscription was gone"
    f.advance(5.0)
    assert f.slot("work/2") is None and releases == ["work/2", "work/2"]


def test_a_worker_killed_during_its_drain_is_released_never_called_drained():
    f = fleet_of(2, runner=FakeRunner(drain_exits=False))
    assert f.scale("work", 1).ok
    f.advance(0)
    f.end("work/1", -signal.SIGKILL)
    messages = [r.message for r in f.logs_since(0)]
    assert not any("drained" in m for m in messages), messages
    assert any("killed by signal 9 during its drain" in m for m in messages), messages
    assert ("spawn", "work/1", True) in f.runner.calls
    assert f.slot("work/1") is None


def test_a_drain_that_outlives_its_timeout_keeps_the_slot_until_released():
    f = fleet_of(2, fleet={"drain_timeout": 2.0}, runner=FakeRunner(drain_exits=False))
    assert f.scale("work", 1).ok
    f.advance(0)
    f.advance(2.5)
    f.end("work/1", 0)  # the worker gave up on its drain and kept its session
    assert ("spawn", "work/1", True) in f.runner.calls, "a timed-out drain must hand its session on"


def test_stop_asks_every_worker_to_keep_its_session():
    f = fleet_of(3, runner=FakeRunner(drain_exits=False))
    f.begin_stop()
    f.pump()
    drains = [c[2] for c in f.runner.calls if c[0] == "send" and isinstance(c[2], Drain)]
    assert len(drains) == 3 and all(d.keep_session for d in drains), drains
    assert {w.state for w in f.snapshot().workers} == {WorkerState.DRAINING}


def test_operator_commands_use_the_engine_rules():
    f = FakeFleet(make_config([dict(ROUTE, workers=2), {"name": "solo", "topic": "s/{x}", "handler": "h:f",
                                                          "shared": False, "workers": 0}]))
    f.start()
    assert f.add_worker("solo").ok, "the first worker of a non-shared route is allowed"
    r = f.add_worker("solo")
    assert not r.ok and "not shared" in r.message
    assert f.remove_worker("work", "work/1").ok
    r = f.remove_worker("work")
    assert not r.ok and "keeps its last worker" in r.message
    assert not f.set_log_level("LOUD").ok
    assert not f.scale("nope", 1).ok


def test_idle_workers_beat_often_enough_for_the_hang_watchdog() -> None:
    from rmqtui.engine.supervisor.specs import idle_beat_interval
    for hang, beat in ((30.0, 1.0), (2.0, 0.2), (1.0, 0.5), (300.0, 10.0)):
        fleet = make_config([ROUTE], fleet={"hang_timeout": hang, "heartbeat_interval": beat}).fleet
        idle = idle_beat_interval(fleet)
        assert beat <= idle <= max(beat, hang / 3.0), (hang, beat, idle)
    assert idle_beat_interval(make_config([ROUTE]).fleet) > 1.0  # the defaults: idle workers beat less often
