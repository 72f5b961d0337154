"""The collector's pure parts: monotonic per-slot counters and the [metrics] settings."""

from __future__ import annotations

import pytest

from rmqtui.engine.metrics import MetricsSettings, MetricsSettingsError, MonotonicCounters, parse_metrics_settings


def test_counter_continues_after_a_reset():
    c = MonotonicCounters()
    assert [c.value("cpu", "r/0", v) for v in (1.0, 5.0, 0.5, 2.0)] == [1.0, 5.0, 5.5, 7.0], "offset after reset"
    assert c.value("cpu", "r/1", 3.0) == 3.0, "slots are independent"


def test_counter_survives_two_resets():
    c = MonotonicCounters()
    for v in (10, 2, 1, 4):
        out = c.value("handled", "r/0", v)
    assert out == 16, f"10, then 2, then 4 after the second reset: 16, got {out}"


def test_per_process_counter_resets_on_a_new_pid_even_when_it_grew():
    c = MonotonicCounters()
    c.value("cpu", "r/0", 0.2, epoch=101)
    assert c.value("cpu", "r/0", 0.3, epoch=202) == pytest.approx(0.5), "a new process's 0.3 s adds to the old one's 0.2 s"
    assert c.value("cpu", "r/0", 0.4, epoch=202) == pytest.approx(0.6), "same process: no new offset"


@pytest.mark.parametrize("doc, expected", [
    ({}, MetricsSettings()),
    ({"metrics": {"listen": 9464}}, MetricsSettings("127.0.0.1", 9464)),
    ({"metrics": {"listen": "9464"}}, MetricsSettings("127.0.0.1", 9464)),
    ({"metrics": {"listen": "0.0.0.0:9100"}}, MetricsSettings("0.0.0.0", 9100)),
    ({"metrics": {"listen": "[::1]:9100"}}, MetricsSettings("::1", 9100)),
])
def test_listen_forms(doc, expected):
    assert parse_metrics_settings(doc) == expected, f"{doc} should give {expected}"


@pytest.mark.parametrize("doc, words", [
    ({"metrics": {"listen": "localhost:http"}}, "no port number"),
    ({"metrics": {"listen": 70000}}, "out of range"),
    ({"metrics": {"listen": True}}, "must be a port"),
    ({"metrics": {"port": 1}}, "unknown key"),
    ({"metrics": 3}, "must be a table"),
])
def test_bad_listen_says_how_to_fix(doc, words):
    with pytest.raises(MetricsSettingsError) as err:
        parse_metrics_settings(doc)
    assert words in str(err.value) and "listen" in str(err.value), f"unclear message: {err.value}"
