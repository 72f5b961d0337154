"""`rmqtui --routemq-app DIR` as a user runs it, and a router that breaks after init."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from rmqtui.cli import main
from rmqtui.engine.broker import free_port
from rmqtui.engine.config import load
from rmqtui.engine.supervisor import Fleet
from rmqtui.testing.mqtt import of_config
from tests.engine.conftest import publish

from .conftest import set_port, wait_for, write_files

RMQTUI = [sys.executable, "-m", "rmqtui.cli"]


def test_routemq_app_headless_runs_counts_and_stops_cleanly(project):
    port = free_port()
    proc = subprocess.Popen(RMQTUI + ["--routemq-app", str(project), "--no-ui", "--json", "--interval", "0.3",
                                      "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines: list[dict] = []
    other: list[str] = []

    def read():
        for line in proc.stdout:
            (lines.append(json.loads(line)) if line.startswith("{") else other.append(line))

    threading.Thread(target=read, daemon=True).start()
    try:
        status = lambda: next((x for x in reversed(lines) if "workers" in x), None)  # noqa: E731
        wait_for(lambda: (s := status()) and [w["state"] for w in s["workers"]] == ["subscribed"] * 5,
                 timeout=60, what="5 RouteMQ workers subscribed")
        assert (project / "routemq.toml").exists() and any("wrote" in x for x in other), \
            "--routemq-app writes the project's routemq.toml when it is missing"
        assert publish(of_config(project / "routemq.toml"), lambda i: f"devices/d{i}/telemetry", 12) == 12
        wait_for(lambda: sum(w["handled"] for w in status()["workers"]
                             if w["route"] == "devices-device_id-telemetry") == 12, what="12 handled")
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, f"exit status after SIGTERM: {proc.returncode}"
        wait_for(lambda: not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE],
                 what="every worker and the broker gone")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_routemq_app_with_errors_does_not_start(tmp_path):
    (tmp_path / "app/routers").mkdir(parents=True)
    (tmp_path / "app/__init__.py").write_text("")
    (tmp_path / "app/routers/__init__.py").write_text("")
    (tmp_path / "app/routers/bad.py").write_text("def oops(:\n")
    r = subprocess.run(RMQTUI + ["--routemq-app", str(tmp_path), "--no-ui"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, f"status {r.returncode}: {r.stderr}"
    assert f"{tmp_path / 'app/routers/bad.py'}:1" in r.stderr and "SyntaxError" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "routemq.toml").exists(), r.stderr


def test_a_router_broken_after_init_fails_its_workers_not_the_supervisor(project):
    assert main(["init", "--from-routemq", str(project)]) == 0
    set_port(project / "routemq.toml", heartbeat_interval=0.2, drain_timeout=5.0)
    (project / "app/routers/devices.py").write_text("from routemq.router import Router\nrouter = Router()\n"
                                                    "raise RuntimeError('database not configured')\n")
    fleet = Fleet(load(project / "routemq.toml"))
    fleet.start()
    try:
        wait_for(lambda: [w.state.value for w in fleet.snapshot().workers] == ["failed"] * 5, timeout=60,
                 what="every worker failed (every worker imports every router, as in RouteMQ)")
        reason = fleet.snapshot().workers[0].reason
        assert "app/routers/devices.py:3" in reason and "database not configured" in reason, reason
        assert fleet.snapshot().broker.state.value == "up", "the supervisor and its broker keep running"
    finally:
        fleet.stop(timeout=10)


def test_routemq_own_scaffold_project_runs_unchanged(tmp_path):
    """The project RouteMQ's own `routemq init` scaffolds (its installed template), run by rmqtui."""
    import routemq.scaffold

    template = Path(routemq.scaffold.__file__).resolve().parent / "templates" / "base"
    root = tmp_path / "scaffold"
    shutil.copytree(template, root, ignore=shutil.ignore_patterns("__pycache__"))
    # its .env points at a broker on localhost:1883 and a MySQL server; keep everything else
    env = (root / ".env").read_text().replace("MQTT_BROKER=localhost", "").replace("MQTT_PORT=1883", "")
    (root / ".env").write_text(env + "\nENABLE_MYSQL=false\n")
    assert main(["init", "--from-routemq", str(root)]) == 0, "init on RouteMQ's scaffold failed"
    set_port(root / "routemq.toml", heartbeat_interval=0.2, drain_timeout=5.0, handler_retries=0)
    fleet = Fleet(load(root / "routemq.toml"))
    fleet.start()
    try:
        wait_for(lambda: [w.state.value for w in fleet.snapshot().workers] == ["subscribed"], timeout=60,
                 what="the scaffold's route subscribed")
        assert publish(fleet, lambda i: "devices/message/abc", 1) == 1
        wait_for(lambda: fleet.snapshot().workers[0].handled == 1, what="the scaffold's handler to finish")
        logs = [r.message for r in fleet.logs_since(0)]
        assert any("[INCOMING] Topic: devices/message/abc" in m for m in logs), \
            f"RouteMQ's example LoggingMiddleware ran (it reads client._client_id): {logs[-10:]}"
        assert fleet.snapshot().workers[0].failed == 0, "the scaffold's handler must not fail"
    finally:
        fleet.stop(timeout=10)


def test_redis_enabled_in_dotenv_is_seen_by_routemq_at_import_and_set_up_per_worker(tmp_path):
    """RouteMQ reads ENABLE_REDIS when it is imported; rmqtui loads .env before that, in every worker."""
    root = write_files(tmp_path / "p", {
        ".env": "ENABLE_MYSQL=false\nENABLE_REDIS=true\nREDIS_HOST=127.0.0.1\nREDIS_PORT=9\n",
        "app/routers/ping.py": """\
            from routemq.router import Router
            router = Router()
            async def ping(payload, client):
                pass
            router.on("ping", ping, qos=1)
            """})
    assert main(["init", "--from-routemq", str(root)]) == 0
    set_port(root / "routemq.toml", heartbeat_interval=0.2, drain_timeout=5.0)
    fleet = Fleet(load(root / "routemq.toml"))
    fleet.start()
    try:
        wait_for(lambda: [w.state.value for w in fleet.snapshot().workers] == ["subscribed"], timeout=60,
                 what="the route subscribed")
        assert publish(fleet, lambda i: "ping", 1) == 1
        wait_for(lambda: fleet.snapshot().workers[0].handled == 1, what="the message handled despite Redis")
        logs = " | ".join(r.message for r in fleet.logs_since(0))
        assert ("Redis integration enabled" in logs or "Redis is enabled but redis package is not installed"
                in logs), f"RouteMQ's import did not see ENABLE_REDIS=true from .env: {logs[-600:]}"
        assert "Redis initialisation failed (ENABLE_REDIS=true)" in logs, f"per-worker Redis set-up: {logs[-600:]}"
    finally:
        fleet.stop(timeout=10)
