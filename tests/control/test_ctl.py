"""`rmqtui ctl` against a fixed-data fleet served on a real socket (the ctl runs as a child process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rmqtui.demo import FixedFleet
from tests.engine.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


def ctl(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "rmqtui.cli", "ctl", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_commands_map_onto_fleet_control(served) -> None:
    fleet = FixedFleet("normal")
    config = served.serve(fleet).config_path
    expected = [
        (("add", "telemetry"), ("add_worker", "telemetry")),
        (("remove", "sensor-data", "sensor-data/1"), ("remove_worker", "sensor-data", "sensor-data/1")),
        (("restart", "telemetry/0"), ("restart_worker", "telemetry/0")),
        (("kill", "telemetry/1"), ("kill_worker", "telemetry/1")),
        (("debug", "all", "on"), ("set_log_level", "DEBUG", None)),
        (("debug", "sensor-data/0", "off"), ("set_log_level", "INFO", "sensor-data/0")),
        (("reload",), ("reload_config",)),
        (("save",), ("save_config",)),
    ]
    for args, call in expected:
        done = ctl(config, *args)
        assert done.returncode == 0, f"{args}: {done.stderr}"
        assert fleet.calls[-1] == call, f"{args} made {fleet.calls[-1]}, not {call}"
    refused = ctl(config, "add", "alerts")
    assert refused.returncode == 1 and refused.stderr.startswith("refused:") and "not shared" in refused.stderr, \
        refused.stderr


def test_status_fits_80_columns_with_problem_workers(served) -> None:
    config = served.serve(FixedFleet("crashloop")).config_path
    done = ctl(config, "status")
    assert done.returncode == 0, done.stderr
    assert "crashloop" in done.stdout and "telemetry/1" in done.stdout, done.stdout
    too_wide = [line for line in done.stdout.splitlines() if len(line) > 80]
    assert not too_wide, "\n".join(too_wide)


def test_logs_filter_by_worker_and_follow_until_the_fleet_goes(served) -> None:
    fleet = FixedFleet("normal")
    server = served.serve(fleet)
    done = ctl(server.config_path, "logs", "--worker", "sensor-data/0")
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines, done.stderr
    assert all(" sensor-data/0: " in line for line in lines), done.stdout

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    follow = subprocess.Popen([sys.executable, "-m", "rmqtui.cli", "ctl", "-c", str(server.config_path), "logs",
                               "-f", "-n", "0", "--worker", "telemetry/0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: any("log" in s.streams for s in server.sessions), what="the follower to subscribe")
        fleet.add_log("INFO", "sensor-data/0", "not for this follower")
        fleet.add_log("WARNING", "telemetry/0", "queue depth 900")
        first = follow.stdout.readline()
        assert "telemetry/0: queue depth 900" in first, first
        server.close()
        out, err = follow.communicate(timeout=30)
        assert follow.returncode == 0 and "the fleet stopped" in err, err
        assert "not for this follower" not in out, out
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
