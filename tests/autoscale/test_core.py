"""The pure autoscale core on a fake clock: step up, calm window, pins, guards."""

from __future__ import annotations

import pytest

from rmqtui.engine.autoscale import (AutoscaleSettings, Policy, RouteScaler, RouteSignals, backlog_growth,
                                     parse_autoscale)

ON = AutoscaleSettings("on", 1, 8)


def sig(desired: int = 2, busy: float | None = 0.5, **kw) -> RouteSignals:
    kw.setdefault("running", desired)
    return RouteSignals(route="r", shared=kw.pop("shared", True), desired=desired, busy=busy, **kw)


def test_steps_up_fast_when_busy():
    d = RouteScaler(ON).decide(sig(2, 0.95), now=0.0)
    assert (d.action, d.recommended) == ("up", 4), f"2 workers 95% busy should jump to 4: {d}"
    assert "busy 95%" in d.reason, d.reason


def test_step_up_is_at_most_double_and_capped_by_max():
    assert RouteScaler(ON).decide(sig(3, 1.0), 0.0).recommended == 5, "ceil(3 * 1.0 / 0.6) = 5"
    assert RouteScaler(ON).decide(sig(1, 1.0), 0.0).recommended == 2, "at most double per step"
    capped = RouteScaler(AutoscaleSettings("on", 1, 3)).decide(sig(2, 1.0), 0.0)
    assert capped.recommended == 3, f"max 3 caps the step: {capped}"
    at_max = RouteScaler(AutoscaleSettings("on", 1, 3)).decide(sig(3, 1.0), 0.0)
    assert at_max.action == "hold" and "at max 3" in at_max.reason, f"{at_max}"


def test_waits_for_the_last_step_before_the_next():
    s = RouteScaler(ON)
    s.decide(sig(2, 0.9), 100.0)
    s.applied(4, 100.0)
    waiting = s.decide(sig(4, 0.9, running=4), 105.0)
    assert waiting.action == "hold" and "waiting" in waiting.reason, f"{waiting}"
    starting = s.decide(sig(4, 0.9, running=3), 111.0)
    assert starting.action == "hold", f"a worker still starting: {starting}"
    again = s.decide(sig(4, 0.9, running=4), 111.0)
    assert again.action == "up", f"past the cool-down with every worker up: {again}"


def test_growing_backlog_scales_up_a_moderately_busy_route():
    d = RouteScaler(ON).decide(sig(2, 0.5, backlog_growth=40.0), 0.0)
    assert d.action == "up" and "backlog +40/s" in d.reason, f"{d}"
    idle = RouteScaler(ON).decide(sig(2, 0.1, backlog_growth=40.0), 0.0)
    assert idle.action == "hold", f"an idle route is not the cause of someone else's backlog: {idle}"


def test_scales_down_one_at_a_time_after_the_calm_window():
    s, p = RouteScaler(ON), Policy()
    for t in range(0, int(p.calm_window), 10):
        d = s.decide(sig(4, 0.1), float(t))
        assert d.action == "hold" and "calm for" in d.reason, f"t={t}: still inside the calm window: {d}"
    d = s.decide(sig(4, 0.1), p.calm_window)
    assert (d.action, d.recommended) == ("down", 3), f"one down after the calm window: {d}"
    s.applied(3, p.calm_window)
    d = s.decide(sig(3, 0.1), p.calm_window + 1)
    assert d.action == "hold", f"the next step needs a new calm window: {d}"
    d = s.decide(sig(3, 0.1), 2 * p.calm_window)
    assert (d.action, d.recommended) == ("down", 2), f"{d}"


def test_a_busy_moment_restarts_the_calm_window():
    s = RouteScaler(ON)
    s.decide(sig(4, 0.1), 0.0)
    s.decide(sig(4, 0.5), 60.0)
    d = s.decide(sig(4, 0.1), 130.0)
    assert d.action == "hold", f"calm only since 130 s: {d}"


def test_never_down_when_the_rest_would_be_too_busy_nor_below_min():
    s = RouteScaler(ON, Policy(busy_down=0.5, calm_window=0))
    d = s.decide(sig(2, 0.45), 0.0)
    assert d.action == "hold" and "too busy" in d.reason, f"{d}"
    floor = RouteScaler(AutoscaleSettings("on", 2, 8), Policy(calm_window=0)).decide(sig(2, 0.0), 0.0)
    assert floor.action == "hold", f"min 2: {floor}"


def test_no_scale_up_with_a_crash_looping_slot():
    d = RouteScaler(ON).decide(sig(2, 0.99, broken="r/1"), 0.0)
    assert d.action == "hold" and "r/1 is crash-looping or failed" in d.reason, f"{d}"


def test_no_scale_up_when_the_host_cpu_is_saturated():
    d = RouteScaler(ON).decide(sig(2, 0.99, host_cpu=0.97), 0.0)
    assert d.action == "hold" and "CPU-bound, more workers will not help" in d.reason, f"{d}"
    ok = RouteScaler(ON).decide(sig(2, 0.99, host_cpu=0.5), 0.0)
    assert ok.action == "up", f"half the CPU free: {ok}"


def test_a_manual_change_pins_until_unpinned():
    s = RouteScaler(ON)
    s.decide(sig(2, 0.5), 0.0)
    d = s.decide(sig(6, 0.1), 1.0)
    assert d.pinned and d.action == "hold" and "set to 6 by hand (was 2)" in d.reason, f"{d}"
    d = s.decide(sig(6, 0.99), 2.0)
    assert d.action == "hold", f"pinned routes are left alone even when busy: {d}"
    s.unpin()
    d = s.decide(sig(6, 0.99), 3.0)
    assert not d.pinned and d.action == "up", f"unpinned: {d}"


def test_own_change_is_not_a_manual_change():
    s = RouteScaler(ON)
    d = s.decide(sig(2, 0.95), 0.0)
    s.applied(d.recommended, 0.0)
    assert not s.decide(sig(2, 0.95, running=2), 0.5).pinned, "the snapshot does not show our change yet"
    assert not s.decide(sig(4, 0.95, running=2), 1.0).pinned, "now it does"
    assert s.decide(sig(5, 0.5), 2.0).pinned, "a later change by hand pins"


def test_suggest_mode_recommends_and_never_pins():
    s = RouteScaler(AutoscaleSettings("suggest", 1, 8))
    s.decide(sig(2, 0.5), 0.0)
    d = s.decide(sig(3, 0.95), 1.0)
    assert not d.pinned and (d.action, d.recommended) == ("up", 5), f"{d}"


def test_off_not_shared_unknown_and_bounds():
    assert RouteScaler(AutoscaleSettings()).decide(sig(2, 0.99), 0.0).action == "hold", "off"
    assert "not shared" in RouteScaler(ON).decide(sig(1, 0.99, shared=False), 0.0).reason, "not shared"
    assert "measuring" in RouteScaler(ON).decide(sig(2, None), 0.0).reason, "no busy figure yet"
    low = RouteScaler(AutoscaleSettings("on", 2, 4)).decide(sig(1, 0.0), 0.0)
    assert (low.action, low.recommended) == ("up", 2) and "below min" in low.reason, f"{low}"
    high = RouteScaler(AutoscaleSettings("on", 1, 4)).decide(sig(6, 0.9), 0.0)
    assert (high.action, high.recommended) == ("down", 4), f"{high}"


def test_backlog_growth():
    assert backlog_growth([(0.0, 100)]) is None, "one sample is no trend"
    assert backlog_growth([(0.0, 100), (0.5, 200)]) is None, "too short a span"
    assert backlog_growth([(0.0, 100), (5.0, 50), (10.0, 600)]) == 50.0, "first to last"


def test_parse_autoscale():
    assert parse_autoscale({"autoscale": "on", "min": 2, "max": 6}) == AutoscaleSettings("on", 2, 6), "on"
    assert parse_autoscale({}).mode == "off", "off by default"
    assert parse_autoscale({"workers": 99}).max == 99, "max defaults to at least workers"


@pytest.mark.parametrize("table, words", [
    ({"autoscale": "yes"}, "not one of off, suggest, on"),
    ({"autoscale": "on", "min": -1}, "min = -1 must be a whole number"),
    ({"autoscale": "on", "max": 2.5}, "max = 2.5 must be a whole number"),
    ({"autoscale": "on", "min": 5, "max": 2}, "min = 5 is above max = 2"),
    ({"autoscale": "on", "shared": False, "max": 3}, "not shared"),
])
def test_parse_autoscale_errors(table, words):
    with pytest.raises(ValueError) as err:
        parse_autoscale(table, where="routes[0]")
    assert words in str(err.value) and str(err.value).startswith("routes[0]"), str(err.value)


def test_every_decision_carries_a_stable_code():
    s = RouteScaler(ON)
    codes = {s.decide(sig(2, 0.95), 0.0).code, RouteScaler(ON).decide(sig(2, 0.99, host_cpu=0.99), 0.0).code,
             RouteScaler(ON).decide(sig(2, 0.5, backlog_growth=50.0), 0.0).code}
    assert codes == {"busy", "cpu-bound", "backlog"}, f"codes: {codes}"
