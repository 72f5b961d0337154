"""The Fleet against a real Mosquitto with real worker processes."""

from __future__ import annotations

import os
import signal

import psutil

from rmqtui.engine.snapshot import WorkerState
from rmqtui.testing.mqtt import connect, new_client

from .conftest import live_workers, publish, wait_for

SHARED = {"name": "work", "topic": "jobs/{kind}/{id}", "handler": "handlers.rec:record", "shared": True,
          "workers": 3, "qos": 1}


def _subscribed(fleet, route, n):
    ws = [w for w in fleet.snapshot().workers_of(route) if w.state is WorkerState.SUBSCRIBED and w.pid]
    return len(ws) == n and ws


def test_shared_route_handles_every_message_once_spread_over_all_workers(project, start_fleet):
    fleet = start_fleet(project.write([SHARED]))
    wait_for(lambda: _subscribed(fleet, "work", 3), what="3 subscribed workers")
    acked = publish(fleet, lambda i: f"jobs/k{i % 5}/{i}", 900)
    assert acked == 900
    wait_for(lambda: fleet.snapshot().route("work").handled >= 900, what="900 handled")
    seen = project.records()
    assert sorted(seen) == list(range(900))
    assert max(seen.values()) == 1, "a message was handled twice in the steady state"
    per_pid = project.per_process()
    assert len(per_pid) == 3 and min(per_pid.values()) > 0, per_pid
    snap = fleet.snapshot()
    assert sum(w.handled for w in snap.workers_of("work")) == 900
    assert all(w.failed == 0 for w in snap.workers)


def test_params_and_share_prefix_reach_the_handler(project, start_fleet):
    project.handler("echo", '''
        from pathlib import Path
        OUT = Path(__file__).resolve().parent / "echo.txt"
        def handle(msg):
            with open(OUT, "a") as f:
                f.write(f"{msg.topic}|{msg.params['site']}|{msg.params['rest']}|{msg.json()['seq']}\\n")
        ''')
    fleet = start_fleet(project.write([{"name": "t", "topic": "tele/{site}/{rest...}", "handler": "handlers.echo:handle",
                                         "workers": 2}]))
    wait_for(lambda: _subscribed(fleet, "t", 2))
    publish(fleet, lambda i: f"tele/s{i}/a/b", 4)
    out = project.root / "handlers" / "echo.txt"
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 4)
    lines = sorted(out.read_text().splitlines())
    assert lines[0] == "tele/s0/a/b|s0|a/b|0"


def test_scaling_changes_the_live_process_count(project, start_fleet):
    fleet = start_fleet(project.write([SHARED]))
    wait_for(lambda: _subscribed(fleet, "work", 3))
    assert fleet.scale("work", 5).ok
    ws = wait_for(lambda: _subscribed(fleet, "work", 5), what="5 workers")
    assert all(psutil.pid_exists(w.pid) for w in ws)
    assert fleet.snapshot().route("work").desired == 5
    assert fleet.scale("work", 2).ok
    wait_for(lambda: len(live_workers(fleet, "work")) == 2, what="2 workers left")
    gone = [w.pid for w in ws if w.slot >= 2]
    wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                             for p in gone), what="drained processes to exit")
    snap = fleet.snapshot()
    assert snap.route("work").running == 2 and [w.slot for w in snap.workers_of("work")] == [0, 1]


def test_scale_down_under_load_loses_nothing(project, start_fleet):
    fleet = start_fleet(project.write([SHARED]))
    wait_for(lambda: _subscribed(fleet, "work", 3))
    import threading

    done = []
    t = threading.Thread(target=lambda: done.append(publish(fleet, lambda i: f"jobs/a/{i}", 3000, rate=1500)))
    t.start()
    # scale down in the middle of the stream, not before it began
    wait_for(lambda: fleet.snapshot().route("work").handled >= 300, what="the stream to be under way")
    assert fleet.scale("work", 1).ok
    t.join(30)
    assert done == [3000]
    wait_for(lambda: len(project.records()) == 3000, timeout=30, what="all 3000 handled")
    assert len(live_workers(fleet, "work")) == 1


def test_non_shared_route_refuses_a_second_worker(project, start_fleet):
    fleet = start_fleet(project.write([{"name": "solo", "topic": "solo/{x}", "handler": "handlers.rec:record",
                                        "shared": False, "workers": 1}]))
    result = fleet.add_worker("solo")
    assert not result.ok and "not shared" in result.message
    assert fleet.snapshot().route("solo").desired == 1
    assert fleet.snapshot().route("solo").filter == "solo/+"


def test_sigkilled_worker_is_restarted_under_the_same_client_id(project, start_fleet):
    fleet = start_fleet(project.write([SHARED]))
    ws = wait_for(lambda: _subscribed(fleet, "work", 3))
    victim = ws[1]
    os.kill(victim.pid, signal.SIGKILL)

    def restarted():
        w = next(w for w in fleet.snapshot().workers if w.id == victim.id)
        return w.restarts == 1 and w.pid and w.pid != victim.pid and w.state is WorkerState.SUBSCRIBED and w

    w = wait_for(restarted, timeout=10, what="the restart")
    assert w.client_id == victim.client_id
    assert w.last_exit == -signal.SIGKILL
    # nothing published while it was down is lost: its session kept them
    publish(fleet, lambda i: f"jobs/a/{i}", 300)
    wait_for(lambda: len(project.records()) == 300)


def test_handler_that_kills_its_process_ends_in_crashloop(project, start_fleet):
    project.handler("boom", '''
        import os
        def handle(msg):
            os._exit(7)
        ''')
    fleet = start_fleet(project.write([{"name": "bad", "topic": "bad/{x}", "handler": "handlers.boom:handle",
                                        "workers": 1}], fleet={"poison_crashes": 100}))
    wait_for(lambda: _subscribed(fleet, "bad", 1))
    publish(fleet, lambda i: f"bad/{i}", 20)
    w = wait_for(lambda: next((w for w in fleet.snapshot().workers if w.state is WorkerState.CRASHLOOP), None),
                 timeout=30, what="crashloop")
    assert "status 7" in w.reason and w.last_exit == 7
    assert w.restarts >= 5
    # a crash loop never gives up: the slot is retried after its (growing) backoff ...
    wait_for(lambda: fleet.snapshot().workers[0].restarts > w.restarts, timeout=30, what="a retry after the backoff")
    # ... and the loop was reported once, not once per retry
    events = [r.message for r in fleet.logs_since(0) if "bad/0: crash loop" in r.message]
    assert len(events) == 1, events


def test_handler_that_fails_to_import_marks_the_worker_failed(project, start_fleet):
    project.handler("broken", '''
        raise RuntimeError("database URL is not set")
        def handle(msg):
            pass
        ''')
    fleet = start_fleet(project.write([{"name": "b", "topic": "b/{x}", "handler": "handlers.broken:handle",
                                        "workers": 1}, SHARED]))
    w = wait_for(lambda: next((w for w in fleet.snapshot().workers if w.route == "b"
                               and w.state is WorkerState.FAILED), None), what="failed state")
    assert "database URL is not set" in w.reason and "failed to import" in w.reason
    assert wait_for(lambda: _subscribed(fleet, "work", 3), what="the other routes to keep running")
    assert fleet.snapshot().workers_of("b")[0].restarts == 0, "a handler that cannot load is not restarted"
    assert any("Traceback" in r.message for r in fleet.logs_since(0) if r.source == "b/0")


def test_handler_exceptions_are_counted_retried_and_dead_lettered(project, start_fleet):
    project.handler("flaky", '''
        def handle(msg):
            if msg.json()["seq"] % 2:
                raise ValueError("odd reading")
        ''')
    fleet = start_fleet(project.write([{"name": "f", "topic": "f/{x}", "handler": "handlers.flaky:handle",
                                        "workers": 1}], fleet={"handler_retries": 1}))
    wait_for(lambda: _subscribed(fleet, "f", 1))
    dead = []
    subscribed = []
    sub = new_client(fleet)
    sub.on_message = lambda c, u, m: dead.append(m)
    sub.on_subscribe = lambda *a: subscribed.append(True)
    connect(sub, fleet)
    sub.subscribe("rmqtui/dead/#", 1)
    sub.loop_start()
    try:
        wait_for(lambda: subscribed, what="the dead-letter subscription (SUBACK)")
        publish(fleet, lambda i: f"f/{i}", 10)
        wait_for(lambda: fleet.snapshot().workers[0].handled == 5 and fleet.snapshot().workers[0].failed == 5)
        wait_for(lambda: len(dead) == 5, what="5 dead letters")
    finally:
        sub.disconnect()
        sub.loop_stop()
    import json

    record = json.loads(dead[0].payload)
    assert record["error"] == "ValueError: odd reading" and record["attempts"] == 2
    assert dead[0].topic == "rmqtui/dead/f"
    assert fleet.snapshot().workers[0].state is WorkerState.SUBSCRIBED


def test_debug_on_one_worker_emits_debug_records_from_that_worker_only(project, start_fleet):
    fleet = start_fleet(project.write([dict(SHARED, workers=2)]))
    wait_for(lambda: _subscribed(fleet, "work", 2))
    assert fleet.set_log_level("DEBUG", "work/0").ok
    wait_for(lambda: [r for r in fleet.logs_since(0) if r.source == "work/0" and "DEBUG" in r.message],
             what="work/0 to confirm its new level")
    publish(fleet, lambda i: f"jobs/a/{i}", 40)
    wait_for(lambda: fleet.snapshot().route("work").handled == 40)
    wait_for(lambda: [r for r in fleet.logs_since(0) if r.level == "DEBUG" and "handled" in r.message])
    debug = [r for r in fleet.logs_since(0) if r.level == "DEBUG"]
    assert {r.source for r in debug} == {"work/0"}
    snap = fleet.snapshot()
    assert snap.workers_of("work")[0].debug and not snap.workers_of("work")[1].debug


def test_hung_worker_is_killed_and_restarted(project, start_fleet):
    fleet = start_fleet(project.write([dict(SHARED, workers=1)], fleet={"hang_timeout": 1.5}))
    w = wait_for(lambda: _subscribed(fleet, "work", 1))[0]
    os.kill(w.pid, signal.SIGSTOP)
    wait_for(lambda: any("hung" in r.message for r in fleet.logs_since(0)), timeout=10, what="hang detection")
    wait_for(lambda: (x := fleet.snapshot().workers[0]).pid != w.pid and x.state is WorkerState.SUBSCRIBED,
             timeout=10, what="restart after hang")



def test_a_worker_whose_figures_did_not_change_keeps_its_snapshot_object(project, start_fleet):
    """The engine reuses an unchanged worker's snapshot (so the control socket sends only changed workers
    and the TUI redraws only their rows); a changed one is a new object."""
    import time

    fleet = start_fleet(project.write([dict(SHARED, workers=2)]))
    wait_for(lambda: _subscribed(fleet, "work", 2))
    reused, deadline, prev = 0, time.monotonic() + 20, fleet.snapshot()
    while time.monotonic() < deadline and reused < 2:
        time.sleep(0.3)
        snap = fleet.snapshot()
        if snap is prev:
            continue
        for a, b in zip(prev.workers, snap.workers):
            assert (a is b) == (a == b), f"{a.id}: equal but rebuilt, or changed in place"
            reused += a is b
        prev = snap
    assert reused >= 2, "no unchanged worker kept its object across snapshots"


def test_snapshot_carries_process_figures(project, start_fleet):
    fleet = start_fleet(project.write([dict(SHARED, workers=1)]), sample_interval=0.2)
    wait_for(lambda: _subscribed(fleet, "work", 1))
    # main thread + paho's network thread, once a sample after the subscription arrived
    w = wait_for(lambda: (x := fleet.snapshot().workers[0]).rss and x.uss and x.fds and (x.threads or 0) >= 2 and x)
    assert w.rss > w.uss > 1_000_000
    snap = fleet.snapshot()
    assert w.started is not None and 0 <= w.uptime_at(snap.time) < 120
    assert snap.broker.state.value == "up" and snap.broker.embedded and snap.broker.unix_path == fleet.unix_path
    assert snap.broker.address == "unix:broker.sock" and not snap.broker.tcp, "the private socket only"


def test_retained_message_is_not_handled_once_per_member(project, start_fleet):
    path = project.write([SHARED])
    fleet = start_fleet(path)
    wait_for(lambda: _subscribed(fleet, "work", 3))
    pub = new_client(fleet)
    connect(pub, fleet)
    pub.loop_start()
    pub.publish("jobs/r/1", '{"seq": 100000}', qos=1, retain=True).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    wait_for(lambda: fleet.snapshot().route("work").handled == 1, what="the live delivery")
    fleet.scale("work", 4)  # a new member subscribes and is offered the retained copy
    wait_for(lambda: _subscribed(fleet, "work", 4))
    publish(fleet, lambda i: f"jobs/a/{i}", 50)
    wait_for(lambda: fleet.snapshot().route("work").handled == 51)
    assert project.records()[100000] == 1


def test_reload_with_an_error_changes_nothing_and_a_good_one_applies_counts(project, start_fleet):
    path = project.write([SHARED])
    fleet = start_fleet(path)
    ws = wait_for(lambda: _subscribed(fleet, "work", 3))
    good = path.read_text()
    path.write_text(good.replace("qos = 1", "qos = 3"))
    result = fleet.reload_config()
    assert not result.ok and "nothing changed" in result.message
    assert any(r.level == "ERROR" and "qos" in r.message for r in fleet.logs_since(0))
    assert {w.pid for w in fleet.snapshot().workers} == {w.pid for w in ws}, "a bad reload touched the fleet"
    path.write_text(good.replace("workers = 3", "workers = 4"))
    result = fleet.reload_config()
    assert result.ok and "work: 4 workers" in result.message
    wait_for(lambda: _subscribed(fleet, "work", 4), what="the fourth worker")


def test_reload_of_an_unchanged_file_ignores_command_line_overrides(project, start_fleet):
    from dataclasses import replace

    from rmqtui.engine.broker import free_port
    from rmqtui.engine.config import load
    from rmqtui.engine.supervisor import Fleet

    config = load(project.write([dict(SHARED, workers=1)]))
    config = replace(config, broker=replace(config.broker, port=free_port()))  # like `rmqtui --port N`
    fleet = Fleet(config)
    fleet.start()
    try:
        wait_for(lambda: _subscribed(fleet, "work", 1))
        fleet.set_log_level("DEBUG")  # a live toggle is not an edit of the file
        result = fleet.reload_config()
        assert result.ok and result.message == "reloaded: no live change", result.message
        assert fleet.snapshot().log_level == "DEBUG"
    finally:
        fleet.stop()


SLOW = """
import time
from pathlib import Path
from handlers.rec import record

GATE = Path(__file__).with_name("gate")  # the test opens it once the drain has begun

def work(msg):
    if msg.json()["seq"] >= 5:
        while not GATE.exists():
            time.sleep(0.01)
    time.sleep(0.03)
    record(msg)
"""


def test_a_draining_worker_keeps_counting(project, start_fleet):
    """Heartbeats go on during a drain, so a draining worker's counters move instead of freezing."""
    project.handler("slow", SLOW)
    route = {"name": "work", "topic": "jobs/{kind}/{id}", "handler": "handlers.slow:work", "workers": 1, "qos": 1}
    fleet = start_fleet(project.write([route], fleet={"drain_timeout": 20.0}))
    wait_for(lambda: _subscribed(fleet, "work", 1))
    assert publish(fleet, lambda i: f"jobs/a/{i}", 120) == 120
    wait_for(lambda: fleet.snapshot().workers[0].handled >= 5, what="the worker busy with the backlog")
    assert fleet.add_worker("work").ok and fleet.remove_worker("work", "work/0").ok
    # the backlog waits at seq 5 until the drain has begun, so the drain has all 115 messages (3.5 s of
    # handler time) to show moving counts, however late this thread saw the first 5 handled
    (project.root / "handlers" / "gate").touch()
    seen: set[int] = set()

    def drained() -> bool:
        w = next((x for x in fleet.snapshot().workers if x.id == "work/0"), None)
        if w is not None and w.state is WorkerState.DRAINING:
            seen.add(w.handled)
        return w is None or w.state is not WorkerState.DRAINING and bool(seen)

    wait_for(drained, timeout=30, what="work/0 to drain")
    assert len(seen) >= 3, f"the draining worker's count froze: {sorted(seen)}"
    wait_for(lambda: len(project.records()) == 120, timeout=30, what="all 120 handled")
