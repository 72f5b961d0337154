"""Issue 13: scaling a route to 0 pauses it: its sessions stay, the broker queues for them, and scaling up
again resumes the same slots, which get every queued message (QoS 1, counted by the chaos harness)."""

from __future__ import annotations

import time

import pytest

from rmqtui.engine.snapshot import WorkerState

from .harness import DeadLetters, Fault, Publisher, _finish, route, subscribed, table, wait_until

pytestmark = pytest.mark.timeout(120)


def test_pause_then_resume_loses_nothing_published_while_paused(chaos, figures):
    fleet = chaos.start(chaos.write([route("work", 2)]))
    wait_until(lambda: subscribed(fleet, "work", 2), 30, "2 subscribed workers")
    clients = {w.id: w.client_id for w in fleet.snapshot().workers}
    sink = DeadLetters(fleet)
    pub = Publisher(fleet, "work", rate=200)
    faults: list[Fault] = []
    try:
        t_start = time.time()
        pub.start()
        wait_until(lambda: len(chaos.handled("work")) > 50, 30, "throughput")
        faults.append(Fault("paused (scale 0)", time.time()))
        assert fleet.scale("work", 0).ok
        wait_until(lambda: [w.state for w in fleet.snapshot().workers] == [WorkerState.PAUSED] * 2, 30,
                   "both slots paused")
        assert all(w.pid is None for w in fleet.snapshot().workers)
        before = len(chaos.handled("work"))
        mark = max(pub.acked().values())
        wait_until(lambda: sum(1 for t in pub.acked().values() if t > mark) >= 150, 30, "publishing while paused")
        assert len(chaos.handled("work")) == before, "a paused route handled messages"
        faults.append(Fault("resumed (scale 2)", time.time()))
        assert fleet.scale("work", 2).ok
        wait_until(lambda: subscribed(fleet, "work", 2), 30, "2 resumed workers")
        assert {w.id: w.client_id for w in fleet.snapshot().workers} == clients, "the same slots resumed"
        time.sleep(0.5)
    finally:
        result = _finish(chaos, pub, sink, "work", faults, t_start, fleet, quiet=3.0, timeout=30.0)
        sink.close()
    figures(table(result.rows, "pause and resume, embedded broker"))
    assert not result.lost, f"lost {len(result.lost)} acknowledged messages, e.g. {result.lost[:10]}"
    paused = next(r for r in result.rows if r.fault.startswith("paused"))
    assert paused.published >= 150, "too little was published while paused to show anything"
