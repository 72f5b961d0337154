"""The raw-TOML settings and the services they start around a live fleet."""

from __future__ import annotations

import urllib.request

import pytest

from rmqtui.engine.autoscale import AutoscaleSettings
from rmqtui.engine.broker import free_port
from rmqtui.engine.config import load
from rmqtui.engine.ops import OpsServices, OpsSettings, parse_ops_settings
from tests.engine.conftest import wait_for

ROUTE = {"name": "a", "topic": "a/{x}", "handler": "handlers.rec:record", "workers": 1}


def test_parse_ops_settings():
    doc = {"metrics": {"listen": 9464}, "routes": [{"name": "a", "autoscale": "suggest", "max": 3}, {"name": "b"}]}
    s = parse_ops_settings(doc)
    assert s.metrics.port == 9464 and s.autoscaled, f"{s}"
    assert s.autoscale["a"] == AutoscaleSettings("suggest", 1, 3) and s.autoscale["b"].mode == "off", f"{s}"
    with pytest.raises(ValueError, match="'b'.*autoscale = 'sometimes'"):
        parse_ops_settings({"routes": [{"name": "b", "autoscale": "sometimes"}]})
    with pytest.raises(ValueError, match=r"\[metrics\] listen"):
        parse_ops_settings({"metrics": {"listen": "x"}})


def test_services_serve_metrics_with_suggestions(project, start_fleet):
    path = project.write([ROUTE])
    fleet = start_fleet(path)
    port = free_port()
    settings = OpsSettings(parse_ops_settings({"metrics": {"listen": port}}).metrics,
                           {"a": AutoscaleSettings("suggest", 1, 4)})
    ops = OpsServices(fleet, load(path).broker, settings).start()
    try:
        def body() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                return reply.read().decode()

        text = wait_for(lambda: 'rmqtui_autoscale_recommended_workers{mode="suggest",route="a"}' in body()
                        and body(), what="a suggestion on /metrics")
        assert "rmqtui_worker_up" in text, "fleet families served next to the suggestion"
        assert ops.autoscaler.latest()["a"].mode == "suggest", "the controller runs in suggest mode"
    finally:
        ops.stop()
    assert ops.metrics is None and ops.autoscaler is None, "stop() ends every service"
