"""A real fleet scraped over HTTP, parsed with prometheus-client's own parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from rmqtui.engine.broker_sys import BrokerSysReader
from rmqtui.engine.metrics import FleetCollector, MetricsServer, RouteRecommendation
from tests.engine.conftest import live_workers, publish, wait_for

ROUTE = {"name": "sensors", "topic": "sensors/{device}/data", "handler": "handlers.rec:record", "workers": 2}

#: family (as the parser names it) -> the labels every sample must carry
EXPECTED = {
    "rmqtui_build_info": {"version", "python"},
    "rmqtui_fleet_start_time_seconds": set(),
    "rmqtui_route_info": {"route", "pattern", "group", "qos", "shared"},
    "rmqtui_route_desired_workers": {"route"},
    "rmqtui_route_workers": {"route", "state"},
    "rmqtui_route_share_skew": {"route"},
    "rmqtui_worker_info": {"route", "worker", "pid", "client_id", "state"},
    "rmqtui_worker_up": {"route", "worker"},
    "rmqtui_worker_start_time_seconds": {"route", "worker"},
    "rmqtui_worker_messages_received": {"route", "worker"},
    "rmqtui_worker_messages_handled": {"route", "worker"},
    "rmqtui_worker_messages_failed": {"route", "worker"},
    "rmqtui_worker_messages_dead_lettered": {"route", "worker"},
    "rmqtui_worker_handler_seconds": {"route", "worker"},
    "rmqtui_worker_restarts": {"route", "worker"},
    "rmqtui_worker_messages_redelivered": {"route", "worker"},
    "rmqtui_worker_dead_letters": {"route", "worker", "reason"},
    "rmqtui_route_handler_duration_seconds": {"route", "le"},  # le: on the _bucket samples only
    "rmqtui_worker_cpu_seconds": {"route", "worker"},
    "rmqtui_worker_resident_memory_bytes": {"route", "worker"},
    "rmqtui_worker_unique_memory_bytes": {"route", "worker"},
    "rmqtui_worker_open_fds": {"route", "worker"},
    "rmqtui_worker_threads": {"route", "worker"},
    "rmqtui_worker_in_flight": {"route", "worker"},
    "rmqtui_broker_info": {"address", "embedded", "protocol", "state"},
    "rmqtui_broker_up": set(),
    "rmqtui_broker_restarts": set(),
    "rmqtui_broker_store_messages": set(),
    "rmqtui_broker_retained_messages": set(),
    "rmqtui_broker_clients_connected": set(),
    "rmqtui_autoscale_recommended_workers": {"route", "mode"},
    "rmqtui_autoscale_info": {"route", "mode", "reason", "pinned"},
}
COUNTERS = ("rmqtui_worker_messages_received", "rmqtui_worker_messages_handled", "rmqtui_worker_handler_seconds",
            "rmqtui_worker_restarts", "rmqtui_worker_cpu_seconds")


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict, name: str, worker: str, suffix: str = "_total") -> float | None:
    for s in families[name].samples:
        if s.name == name + suffix and s.labels.get("worker") == worker:
            return s.value
    return None


def test_scrape_every_family_and_counters_survive_sigkill(project, start_fleet):
    fleet = start_fleet(project.write([ROUTE]))
    wait_for(lambda: len([w for w in live_workers(fleet) if w.state.value == "subscribed"]) == 2,
             what="two subscribed workers")
    snap = fleet.snapshot()
    reader = BrokerSysReader(fleet.broker_settings())
    reader.start()
    recs = lambda: [RouteRecommendation("sensors", "suggest", 2, "steady: busy 3% of the time")]  # noqa: E731
    server = MetricsServer(FleetCollector(fleet.snapshot, reader.stats, recs), port=0)
    server.start()
    try:
        wait_for(lambda: reader.stats().clients_connected is not None, what="the broker's $SYS figures")
        scrape(server.port)  # the share skew compares two scrapes
        assert publish(fleet, lambda i: f"sensors/d{i % 7}/data", 60) == 60, "publishes acknowledged"
        wait_for(lambda: fleet.snapshot().route("sensors").handled >= 60, what="60 handled")
        wait_for(lambda: all(w.cpu_seconds is not None for w in live_workers(fleet)), what="a CPU sample each")
        families = scrape(server.port)
        for name, labels in EXPECTED.items():
            assert name in families, f"family {name} missing from /metrics"
            samples = [s for s in families[name].samples if not s.name.endswith("_created")]
            assert samples, f"family {name} has no samples"
            for s in samples:
                want = labels if s.name.endswith("_bucket") else labels - {"le"}
                assert set(s.labels) == want, f"{s.name} has labels {sorted(s.labels)}, expected {sorted(want)}"
        for name in COUNTERS:
            assert families[name].type == "counter", f"{name} should be a counter"
        for f in families.values():
            for s in f.samples:
                assert "sensors/d" not in str(s.labels), f"a topic became a label in {s.name}"
                if s.name != "rmqtui_worker_info":
                    assert "pid" not in s.labels, f"the pid is a label of {s.name}"
        handled = sum(value(families, "rmqtui_worker_messages_handled", w) or 0 for w in ("sensors/0", "sensors/1"))
        assert handled == 60, f"/metrics shows {handled} handled, the fleet handled 60"

        victim = "sensors/0"
        before = {name: value(families, name, victim) for name in COUNTERS}
        assert before["rmqtui_worker_messages_handled"] > 0, "the victim handled messages before the kill"
        old_pid = fleet.snapshot().workers[0].pid
        assert fleet.kill_worker(victim).ok, "kill accepted"
        wait_for(lambda: any(w.id == victim and w.pid not in (None, old_pid) and w.state.value == "subscribed"
                             and w.cpu_seconds is not None for w in fleet.snapshot().workers),
                 what="the killed worker's slot to run again")
        assert publish(fleet, lambda i: f"sensors/d{i % 7}/data", 60, start=60) == 60, "acked"
        wait_for(lambda: fleet.snapshot().route("sensors").handled >= 120, what="120 handled")
        after = scrape(server.port)
        for name in COUNTERS:
            b, a = before[name], value(after, name, victim)
            assert a is not None and a >= b, f"{name} of {victim} went from {b} to {a} across a SIGKILL"
        assert value(after, "rmqtui_worker_restarts", victim) >= 1, "the restart is counted"
        causes = {s.labels["reason"]: s.value for s in after["rmqtui_worker_restarts_by_reason"].samples
                  if s.labels.get("worker") == victim and s.name.endswith("_total")}
        assert causes.get("killed by the operator", 0) >= 1, f"the restart's cause is counted: {causes}"
        hist = {s.labels.get("le"): s.value for s in after["rmqtui_route_handler_duration_seconds"].samples
                if s.name.endswith("_bucket") and s.labels.get("route") == "sensors"}
        assert hist["+Inf"] >= 120 and list(hist.values()) == sorted(hist.values()), f"a cumulative histogram: {hist}"
        assert value(after, "rmqtui_worker_up", victim, "") == 1, "the slot is up again"
    finally:
        server.stop()
        reader.stop()
