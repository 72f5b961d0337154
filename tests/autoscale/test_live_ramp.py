"""A load ramp from the load generator grows an ``on`` route and, after the calm window, shrinks it back.

Nothing may be lost at QoS 1: every sequence number the broker acknowledged is handled at least once.
The decision log is printed (run with ``-s`` to read it).
"""

from __future__ import annotations

import time

from rmqtui.engine.autoscale import AutoscaleController, AutoscaleSettings, Policy
from rmqtui.engine.broker_sys import BrokerSysReader
from rmqtui.engine.topics import TopicPattern
from rmqtui.loadgen import publish_load
from tests.engine.conftest import live_workers, wait_for

SLOW = """
import time
from handlers.rec import record

def work(msg):
    time.sleep(0.02)  # I/O-bound: 50 messages per second per worker at most
    record(msg)
"""
COUNT, RATE = 1000, 120.0  # 2.4 workers' worth of handler time per second


def test_ramp_grows_then_shrinks_with_nothing_lost(project, start_fleet):
    project.handler("slow", SLOW)
    route = {"name": "work", "topic": "work/{n}", "handler": "handlers.slow:work", "workers": 1}
    fleet = start_fleet(project.write([route]))
    wait_for(lambda: [w for w in live_workers(fleet) if w.state.value == "subscribed"], what="the first worker")
    snap = fleet.snapshot()
    reader = BrokerSysReader(fleet.broker_settings())
    reader.start()
    # host_cpu is fixed: this test shares two cores with other jobs, and the CPU guard is covered by the core tests
    ctl = AutoscaleController(fleet, {"work": AutoscaleSettings("on", 1, 4)},
                              policy=Policy(window=3.0, up_cooldown=3.0, calm_window=3.0),
                              broker_stats=reader.stats, host_cpu=lambda: None, interval=0.5)
    ctl.start()
    t0 = time.time()
    try:
        result = publish_load(fleet.broker_settings(), [TopicPattern.parse(route["topic"])],
                              count=COUNT, rate=RATE, qos=1)
        assert result.acknowledged == COUNT, f"the broker acknowledged {result.acknowledged} of {COUNT}"
        wait_for(lambda: len(project.records()) >= COUNT, timeout=120, what=f"{COUNT} distinct messages handled")
        peak = max(d.recommended for d in ctl.history if d.applied) if any(d.applied for d in ctl.history) else 1
        assert peak >= 3, f"the ramp should grow the route to 3 or more workers, peak {peak}"
        wait_for(lambda: fleet.snapshot().route("work").desired == 1 and len(live_workers(fleet, "work")) == 1,
                 timeout=120, what="the route to shrink back to 1 after the calm window")
    finally:
        ctl.stop()
        reader.stop()
        print(f"\ndecision log (t = seconds since the load started; {COUNT} msgs at {RATE:g}/s, QoS 1):")
        for d in ctl.history:
            print(f"  t={d.time - t0:6.1f}  {d.route} {d.current}->{d.recommended} {d.action:<4} "
                  f"{'applied' if d.applied else 'noted  '}  {d.reason}")
    seen = project.records()
    lost = [i for i in range(COUNT) if seen[i] == 0]
    dupes = sum(n - 1 for n in seen.values() if n > 1)
    print(f"  handled {len(seen)} distinct of {COUNT}, lost {len(lost)}, redelivered twice or more: {dupes}")
    assert not lost, f"{len(lost)} acknowledged messages never handled, first {lost[:10]}"
    downs = [d for d in ctl.history if d.applied and d.action == "down"]
    assert all(b.recommended == b.current - 1 for b in downs), "scale-down is one worker at a time"
