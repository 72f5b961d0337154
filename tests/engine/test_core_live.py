"""The rebuilt core against real processes: snapshots never wait, a stop keeps every session, state persists."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time

import psutil

from rmqtui.engine import runtime
from rmqtui.engine.broker import EmbeddedBroker, free_port
from rmqtui.engine.config import load
from rmqtui.engine.snapshot import BrokerState, WorkerState
from rmqtui.engine.supervisor import Fleet, runtime_state_path

from rmqtui.testing.project import recording_handler

from .conftest import no_children_left, publish, wait_for

SHARED = {"name": "work", "topic": "jobs/{id}", "handler": "handlers.rec:record", "shared": True, "workers": 2,
          "qos": 1}
SLOW = recording_handler(delay=0.01)  # a backlog builds up behind it


def _subscribed(fleet, n):
    ws = [w for w in fleet.snapshot().workers if w.state is WorkerState.SUBSCRIBED and w.pid]
    return len(ws) == n and ws


#: a restart attempt of the embedded broker waits this long for it to get ready (EmbeddedBroker.restart)
RESTART_WAIT = 5.0


def _slowest_snapshot(fleet) -> float:
    """The slowest of five ``snapshot()`` + ``logs_since()`` calls, in seconds."""
    worst = 0.0
    for _ in range(5):
        t0 = time.monotonic()
        fleet.snapshot()
        fleet.logs_since(0)
        worst = max(worst, time.monotonic() - t0)
    return worst


def _hanging_start() -> bool:
    """The wrapper found the flag and now sleeps instead of starting Mosquitto."""
    for p in psutil.Process().children(recursive=True):
        try:
            if p.cmdline()[:2] == ["sleep", "60"]:
                return True
        except psutil.Error:  # exited meanwhile
            pass
    return False


def test_snapshot_answers_at_once_while_the_broker_is_stopped_and_while_it_restarts(project, start_fleet,
                                                                                    tmp_path):
    """A front end's snapshot never waits behind the broker: it is not a timing target (the benchmark
    measures speed) but a check that nothing blocks, so the bound is a fifth of the restart's own wait."""
    flag = tmp_path / "hang-next-start"
    wrapper = tmp_path / "mosq.sh"
    # the first start is the real Mosquitto; a restart, once the flag exists, never gets ready
    wrapper.write_text(f'#!/bin/sh\nif [ -e "{flag}" ]; then exec sleep 60; fi\nexec {shutil.which("mosquitto") or "/usr/sbin/mosquitto"} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    fleet = start_fleet(project.write([SHARED], broker={"mosquitto": str(wrapper)}, fleet={"hang_timeout": 60.0}))
    wait_for(lambda: _subscribed(fleet, 2), what="2 subscribed workers")
    broker_pid = fleet.snapshot().broker.pid
    os.kill(broker_pid, signal.SIGSTOP)
    try:
        time.sleep(0.5)  # let the workers notice: the point is a snapshot taken while they do
        stopped = _slowest_snapshot(fleet)
        print(f"snapshot() with the broker SIGSTOPped: slowest of 5 {stopped * 1000:.2f} ms")
        assert stopped < RESTART_WAIT / 5, f"snapshot() took {stopped * 1000:.0f} ms while the broker was stopped"
        flag.write_text("")
    finally:
        os.kill(broker_pid, signal.SIGKILL)
        os.kill(broker_pid, signal.SIGCONT)
    wait_for(lambda: fleet.snapshot().broker.state is BrokerState.RESTARTING, what="the restart to begin")
    # RESTARTING is reported just before the wrapper starts and looks for the flag: removing the flag before
    # it looked would let this attempt succeed, so wait until the attempt really hangs (the wrapper sleeps)
    wait_for(_hanging_start, what="the restart attempt to hang")
    during = _slowest_snapshot(fleet)
    print(f"snapshot() during a broker restart: slowest of 5 {during * 1000:.2f} ms")
    assert during < RESTART_WAIT / 5, f"snapshot() took {during * 1000:.0f} ms during a broker restart"
    flag.unlink()
    wait_for(lambda: fleet.snapshot().broker.state is BrokerState.UP, timeout=30, what="the broker back up")
    failed = [r.message for r in fleet.logs_since(0) if "restart failed" in r.message]
    assert failed, "the hanging attempt must be reported"
    wait_for(lambda: _subscribed(fleet, 2), timeout=30, what="workers back on the restarted broker")


def test_stop_keeps_every_session_and_the_next_start_handles_what_was_queued(project, tmp_path):
    """External broker: what is published while rmqtui is stopped is handled after the next start."""
    broker = EmbeddedBroker(tmp_path / "ext", port=free_port())  # a Mosquitto of the test's own
    broker.start()
    try:
        path = project.write([SHARED], broker={"embedded": False, "port": broker.port})
        fleet = Fleet(load(path))
        fleet.start()
        try:
            wait_for(lambda: _subscribed(fleet, 2), what="2 subscribed workers")
        finally:
            fleet.stop()
        logs = [r.message for r in fleet.logs_since(0)]
        assert sum("stopped; its session is kept" in m for m in logs) == 2, logs
        assert not any("drained" in m for m in logs), "a stop is not a scale-down"
        assert publish(broker.port, lambda i: f"jobs/{i}", 300) == 300  # nobody runs: the sessions queue them
        again = Fleet(load(path))
        again.start()
        try:
            wait_for(lambda: len(project.records()) == 300, timeout=30, what="the queued 300 handled after restart")
        finally:
            again.stop()
    finally:
        broker.stop()
    no_children_left()


def test_a_backlog_bigger_than_the_stop_survives_in_the_state_directory(project):
    """Embedded broker: a stop under backlog keeps what the broker acknowledged, on disk, for the next start."""
    project.handler("slow", SLOW)
    path = project.write([dict(SHARED, handler="handlers.slow:record")], fleet={"drain_timeout": 1.0})
    fleet = Fleet(load(path))
    fleet.start()
    try:
        wait_for(lambda: _subscribed(fleet, 2), what="2 subscribed workers")
        assert publish(fleet, lambda i: f"jobs/{i}", 1500) == 1500
    finally:
        fleet.stop(timeout=3)
    handled_first = len(project.records())
    assert handled_first < 1500, "the backlog should outlast the stop for this test to mean anything"
    state = runtime.fleet_state_dir(path)
    assert (state / "broker" / "mosquitto.db").exists(), "the broker must persist in the per-config state dir"
    assert not runtime_state_path(path).exists(), "the runtime state file is removed on stop"
    again = Fleet(load(path))
    again.start()
    try:
        wait_for(lambda: len(project.records()) == 1500, timeout=60, what="every acknowledged message handled")
    finally:
        again.stop()
    no_children_left()


def test_fresh_discards_the_stored_sessions(project):
    project.handler("slow", SLOW)
    path = project.write([dict(SHARED, handler="handlers.slow:record", workers=1)])
    fleet = Fleet(load(path))
    fleet.start()
    try:
        wait_for(lambda: _subscribed(fleet, 1), what="a subscribed worker")
        publish(fleet, lambda i: f"jobs/{i}", 800)
    finally:
        fleet.stop(timeout=1)
    before = len(project.records())
    again = Fleet(load(path), fresh=True)
    again.start()
    try:
        wait_for(lambda: _subscribed(again, 1), what="a subscribed worker")
        assert any("--fresh" in r.message for r in again.logs_since(0))
        publish(again, lambda i: f"jobs/{i}", 1, start=100_000)
        wait_for(lambda: 100_000 in project.records(), what="a new message handled")
        assert len(project.records()) < 800 and before < 800, "the old backlog should be gone"
    finally:
        again.stop()


def test_a_stale_state_file_of_a_killed_supervisor_is_cleaned_up(project):
    path = project.write([dict(SHARED, workers=1)])
    dead = psutil.Popen(["true"])
    dead.wait()
    runtime.write_private(runtime_state_path(path), f'{{"pid": {dead.pid}, "host": "x", "port": 1}}')
    fleet = Fleet(load(path))
    fleet.start()
    try:
        assert any("did not stop cleanly" in r.message for r in fleet.logs_since(0))
        assert f'"pid": {os.getpid()}' in runtime_state_path(path).read_text()
    finally:
        fleet.stop()


def test_slots_left_over_from_a_previous_run_are_released_at_the_next_start(project):
    path = project.write([SHARED])
    fleet = Fleet(load(path))
    fleet.start()
    try:
        assert fleet.scale("work", 3).ok  # not saved to the file
        wait_for(lambda: _subscribed(fleet, 3), what="3 subscribed workers")
    finally:
        fleet.stop()
    again = Fleet(load(path))  # the file still says 2
    again.start()
    try:
        wait_for(lambda: any("work/2: left over from the previous run" in r.message for r in again.logs_since(0)),
                 what="the leftover slot to be noticed")
        wait_for(lambda: [w.id for w in again.snapshot().workers] == ["work/0", "work/1"], timeout=20,
                 what="the leftover slot released and forgotten")
        assert any("work/2: left the share group" in r.message for r in again.logs_since(0))
    finally:
        again.stop()


def test_restored_subscriptions_queue_what_arrives_before_the_workers_reconnect(tmp_path):
    """Mosquitto forgets $share subscriptions over its own restart; the fleet restores them before its workers."""
    import paho.mqtt.client as mqtt

    from rmqtui.engine.protocol import BrokerSettings
    from rmqtui.engine.supervisor.broker_keeper import restore_subscriptions

    broker = EmbeddedBroker(tmp_path, port=free_port())
    broker.start()
    try:
        subs = [("rmqtui-test-work-0", "$share/g/jobs/+", 1)]
        access = BrokerSettings(host="127.0.0.1", port=broker.port)
        assert restore_subscriptions(access, subs) == 1  # the first run's session
        broker.restart()  # persistence saved and loaded; the $share subscription is gone
        assert restore_subscriptions(access, subs) == 1
        assert publish(broker.port, lambda i: f"jobs/{i}", 5) == 5
        got = []
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rmqtui-test-work-0", clean_session=False)
        c.on_message = lambda *a: got.append(a[2].payload)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        try:
            wait_for(lambda: len(got) == 5, what="the 5 messages queued in the restored session")
        finally:
            c.disconnect()
            c.loop_stop()
    finally:
        broker.stop()
