"""Fault injection against a real Mosquitto: numbered QoS 1 traffic while workers and the broker fail.

Every test is bounded in message count and time and stops by itself; waits poll with deadlines.  The
long variant is ``.venv/bin/python tests/chaos/run_long.py --minutes 5``.
"""

from __future__ import annotations

import time

import pytest

from rmqtui.engine.snapshot import BrokerState, WorkerState

from .harness import (FAIL_EVERY, AuthBroker, DeadLetters, Publisher, broker_crash, crashloop, poison, route,
                      subscribed, table, wait_until, worker, worker_chaos)

pytestmark = pytest.mark.timeout(120)

#: kill a worker, scale up, kill, hang one past the watchdog, scale down twice (drains), kill, back to 3
PLAN = ["kill", "up", "kill", "hang", "down", "down", "kill", "reset"]


def test_worker_faults_lose_nothing(chaos, figures):
    result = worker_chaos(chaos, seconds=60, rate=400, workers=3, plan=PLAN, seed=7, gap=0.8)
    figures(table(result.rows, "worker faults (SIGKILL, scale, SIGSTOP past the watchdog, raising handler)"))
    assert len(result.rows) == len(PLAN) + 2  # baseline + every fault + tail: none was skipped
    assert all(r.recover is not None for r in result.rows[1:-1])
    for row in result.rows:
        assert row.lost == 0, f"{row.fault}: lost {row.lost_seqs[:20]}"
    raised = [s for s in result.acked if s % FAIL_EVERY == 0]
    assert raised and all(result.dead.get(s) for s in raised), "a raising message was not dead-lettered"
    assert not any(s % FAIL_EVERY == 0 for s in result.handled)


def test_broker_crash_is_recovered_and_losses_are_reported(chaos, figures):
    result = broker_crash(chaos, rate=400, workers=3)
    figures(table(result.rows, "embedded broker SIGKILL (losses reported, not asserted)"))
    crash = result.rows[1]
    print(f"broker crash lost {crash.lost} acknowledged messages, e.g. {crash.lost_seqs[:10]}; "
          f"before the crash window: {result.rows[0].lost}")
    assert crash.recover is not None and "address kept: True" in crash.note
    # once the broker is back and the workers resubscribed, the fleet is whole again
    assert result.rows[-1].lost == 0, result.rows[-1].lost_seqs[:20]


def test_crashlooping_slot_stops_absorbing_traffic(chaos, figures):
    result, facts = crashloop(chaos, rate=300, workers=3)
    figures(table(result.rows, "crash-looping slot cl/1 (baseline: published before its session was released)"))
    assert facts["state_after"] is WorkerState.CRASHLOOP and "status 7" in facts["reason"]
    assert facts["restarts_after"] >= facts["restarts_before"], "a crash-looping slot keeps being retried"
    assert facts["others_unchanged"], "the healthy workers must not be disturbed"
    after = result.rows[1]
    assert after.published > 300 and after.lost == 0, f"lost after the crashloop: {after.lost_seqs[:20]}"


def test_poison_message_is_dead_lettered_instead_of_crashlooping(chaos, figures):
    result, facts = poison(chaos, rate=300, workers=2, count=900, poison_seq=301)
    figures(table(result.rows, "poison message (os._exit on seq 301)"))
    assert facts["restarts"] == facts["poison_crashes"] == 3
    assert facts["state"] is WorkerState.SUBSCRIBED
    assert "crashed the worker process repeatedly" in facts["error"]
    assert len(facts["events"]) == 1
    assert 301 in result.dead
    for row in result.rows:
        assert row.lost == 0, f"{row.fault}: lost {row.lost_seqs[:20]}"


def test_refused_credentials_fail_with_the_reason_and_no_tight_loop(chaos, figures):
    broker = AuthBroker(chaos.root)
    try:
        path = chaos.write([route("a", 2)], broker={"embedded": False, "port": broker.port, "username": "chaos"})
        fleet = chaos.start(path, env={"MQTT_PASSWORD": "wrong"})
        t0 = time.monotonic()
        ws = wait_until(lambda: (w := fleet.snapshot().workers) and all(x.state is WorkerState.FAILED for x in w)
                        and w, 20, "both workers to fail")
        to_fail = time.monotonic() - t0
        assert all("refused the connection" in w.reason for w in ws), [w.reason for w in ws]
        snap = wait_until(lambda: (s := fleet.snapshot()).broker.state is BrokerState.AUTH_FAILED and s, 10,
                          "broker state auth-failed")
        assert "refused" in snap.broker.reason
        pids = {w.id: w.pid for w in ws}
        r0, t1 = broker.refusals(), time.monotonic()
        time.sleep(4.0)  # measuring a rate over a window, not waiting for a condition
        rate = (broker.refusals() - r0) / (time.monotonic() - t1)
        after = fleet.snapshot()
        figures(f"refused credentials: failed after {to_fail:.2f}s, reason {ws[0].reason!r}; broker "
                f"{after.broker.state.value}; {rate:.2f} connection attempts/s over 2 workers; restarts "
                f"{[w.restarts for w in after.workers]}")
        assert all(w.restarts == 0 and w.pid == pids[w.id] and w.state is WorkerState.FAILED
                   for w in after.workers), "a refused worker must not be restarted"
        assert rate <= 2.5, f"{rate:.1f} connection attempts per second is a tight loop"
    finally:
        chaos.stop_all()
        broker.stop()


def test_release_of_a_crashlooping_slot_does_not_dead_letter_unhandled_messages(chaos):
    chaos.set_bad_slot("cl/0")
    fleet = chaos.start(chaos.write([route("cl", 1, "handlers.chaos:crashy")], fleet={"poison_crashes": 100}))
    wait_until(lambda: subscribed(fleet, "cl", 1), 30, "the worker")
    sink = DeadLetters(fleet)
    pub = Publisher(fleet, "cl", rate=200, limit=200, extra=lambda s: {"seq": s * FAIL_EVERY + 1}).start()
    try:
        wait_until(lambda: (w := worker(fleet, "cl/0")) and w.state is WorkerState.CRASHLOOP, 60, "crashloop")
        # the route's only slot is never released (the broker must queue, not drop): it keeps retrying
        wait_until(lambda: worker(fleet, "cl/0").restarts >= 6, 60, "a retry after the crash loop")
        pub.stop()
        time.sleep(1.0)  # give a wrongly dead-lettered message time to arrive (absence check)
        errors = [e for (r, _), e in sink.errors.items() if r == "cl"]
    finally:
        sink.close()
    assert not errors, f"{len(errors)} messages the handler never saw were dead-lettered: {errors[:2]}"
