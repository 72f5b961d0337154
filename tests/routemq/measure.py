"""Figures for the README: what a RouteMQ route costs per rmqtui worker (start, memory).

    .venv/bin/python tests/routemq/measure.py

Runs the test project (5 workers) on a private Mosquitto, sends each route one message so every
worker has imported RouteMQ and set up its services, then prints the median per-worker figures.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from rmqtui.cli import main as cli
    from rmqtui.engine.config import load
    from rmqtui.engine.supervisor import Fleet
    from rmqtui.routemq.commands import load_config_with_dotenv
    from tests.engine.conftest import publish
    from tests.routemq.conftest import copy_project, records, set_port

    tmp = Path(tempfile.mkdtemp(prefix="rmqtui-routemq-"))
    try:
        project = copy_project(tmp / "project")
        t0 = time.monotonic()
        assert cli(["init", "--from-routemq", str(project)]) == 0
        discovery = time.monotonic() - t0
        set_port(project / "routemq.toml", heartbeat_interval=0.2)
        config = load_config_with_dotenv(project / "routemq.toml", load, environ={})
        fleet = Fleet(config)
        t0 = time.monotonic()
        fleet.start()
        try:
            while [w.state.value for w in fleet.snapshot().workers] != ["subscribed"] * 5:
                time.sleep(0.05)
            ready = time.monotonic() - t0
            port = config.broker.port
            publish(port, lambda i: f"devices/d{i}/telemetry", 30)
            publish(port, lambda i: "devices/d1/status", 1)
            while len(records(project)) < 31:
                time.sleep(0.05)
            time.sleep(3 * 0.2 + 2.5)  # let the heartbeats and the adaptive sampler catch up
            workers = fleet.snapshot().workers
            uss = statistics.median(w.uss for w in workers if w.uss) / 2**20
            rss = statistics.median(w.rss for w in workers if w.rss) / 2**20
        finally:
            fleet.stop(timeout=10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"discovery + init --from-routemq: {discovery:.2f} s")
    print(f"fleet start to 5 RouteMQ workers subscribed: {ready:.2f} s")
    print(f"per RouteMQ worker after its first message: USS {uss:.1f} MiB, RSS {rss:.1f} MiB (median of 5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
