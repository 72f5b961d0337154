"""Share skew over a sliding window and the autoscaler's advice, as every front end gets them in the snapshot."""

from __future__ import annotations

from rmqtui.engine.snapshot import BrokerSnapshot, BrokerState, FleetSnapshot, RouteSnapshot, WorkerSnapshot, WorkerState
from rmqtui.engine.supervisor.view import RouteNotes, with_route_notes


def _snap(t: float, received: tuple[int, int]) -> FleetSnapshot:
    route = RouteSnapshot("r", "r/{id}", "$share/g/r/+", True, 1, 2, 2)
    workers = tuple(WorkerSnapshot(f"r/{i}", "r", i, f"c{i}", 100 + i, WorkerState.SUBSCRIBED, received=n)
                    for i, n in enumerate(received))
    return FleetSnapshot(t, 0.0, "g", "x.toml", BrokerSnapshot("127.0.0.1", 1, True, BrokerState.UP), (route,), workers)


def test_skew_is_measured_over_the_window_and_advice_is_carried():
    notes = RouteNotes(window=10.0)
    first = with_route_notes(notes, _snap(0.0, (0, 0)), {})
    assert first.routes[0].skew is None, "no window yet"
    mid = with_route_notes(notes, _snap(5.0, (50, 10)), {})
    assert mid.routes[0].skew is None, "half a window is not enough"
    # one worker got 300 of 400 messages in the window: max / mean - 1 = 300 / 200 - 1 = 0.5
    later = with_route_notes(notes, _snap(10.0, (300, 100)), {"r": (3, "busy 95% of the time")})
    assert later.routes[0].skew == 0.5
    assert (later.routes[0].advice, later.routes[0].advice_reason) == (3, "busy 95% of the time")
    even = with_route_notes(notes, _snap(20.0, (500, 300)), {})
    assert even.routes[0].skew == 0.0 and even.routes[0].advice is None
