"""Live: a headless fleet (real Mosquitto, real workers) operated with `rmqtui ctl`, under a fake systemd."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

from rmqtui.engine import runtime
from tests.engine.conftest import Project, wait_for

ROOT = Path(__file__).resolve().parents[2]
ROUTE = {"name": "work", "topic": "jobs/{id}", "handler": "handlers.rec:record", "shared": True, "workers": 2,
         "qos": 1}


def rmqtui(*args: str, config: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmqtui.cli", *args[:1], "-c", str(config), *args[1:]],
                          capture_output=True, text=True, timeout=timeout, env=_env(), cwd=config.parent)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def status(config: Path) -> dict | None:
    done = rmqtui("ctl", "status", "--json", config=config)
    return json.loads(done.stdout) if done.returncode == 0 else None


def subscribed(config: Path, count: int) -> bool:
    snap = status(config)
    return bool(snap) and sum(w["state"] == "subscribed" for w in snap["workers"]) == count


class Headless:
    """``rmqtui --no-ui`` in a child process; stopped (and waited for) at teardown."""

    def __init__(self, config: Path, *extra: str, env: dict | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "rmqtui.cli", "--no-ui", "-c", str(config),
                                      "--interval", "30", *extra], cwd=config.parent, env=env or _env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, timeout: float = 30, *, terminate: bool = True) -> tuple[int, str, str]:
        if terminate and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


@pytest.fixture
def headless(dirs):
    started: list[Headless] = []

    def start(config: Path, *extra: str, env: dict | None = None) -> Headless:
        h = Headless(config, *extra, env=env)
        started.append(h)
        return h

    yield start
    for h in started:
        if h.proc.poll() is None:
            h.finish()


@pytest.fixture
def config(dirs) -> Path:
    root = dirs / "proj"
    root.mkdir()
    return Project(root).write([ROUTE])


def test_ctl_operates_a_headless_fleet(config, headless) -> None:
    fleet = headless(config)
    wait_for(lambda: subscribed(config, 2), timeout=30, what="2 subscribed workers")
    snap = status(config)
    assert [r["name"] for r in snap["routes"]] == ["work"], str(snap["routes"])
    assert [w["id"] for w in snap["workers"]] == ["work/0", "work/1"], str(snap["workers"])
    assert snap["control"] == {"role": "operator", "pid": fleet.proc.pid}, str(snap["control"])

    human = rmqtui("ctl", "status", config=config)
    assert human.returncode == 0 and "work/1" in human.stdout, human.stderr
    assert max(len(line) for line in human.stdout.splitlines()) <= 80, human.stdout
    # the broker's start line names two long paths: cut for a terminal, whole with --wide or --json
    logs = rmqtui("ctl", "logs", config=config)
    assert logs.returncode == 0 and "embedded Mosquitto" in logs.stdout, logs.stderr
    assert max(len(line) for line in logs.stdout.splitlines()) <= 80, logs.stdout
    wide = rmqtui("ctl", "logs", "--wide", config=config).stdout
    assert max(len(line) for line in wide.splitlines()) > 80 and "broker.sock" in wide, wide
    records = [json.loads(line) for line in rmqtui("ctl", "logs", "--json", config=config).stdout.splitlines()]
    assert any("broker.sock" in r["message"] for r in records), records[:3]

    scaled = rmqtui("ctl", "scale", "work", "5", config=config)
    assert scaled.returncode == 0, scaled.stderr
    wait_for(lambda: subscribed(config, 5), timeout=30, what="5 subscribed workers")

    viewer = rmqtui("ctl", "--read-only", "scale", "work", "1", config=config)
    assert viewer.returncode == 1 and "read-only" in viewer.stderr, viewer.stderr
    unknown = rmqtui("ctl", "restart", "nope/7", config=config)
    assert unknown.returncode == 1 and unknown.stderr.startswith("refused:"), unknown.stderr
    assert subscribed(config, 5), "a refused command changed the fleet"

    second = rmqtui("--no-ui", "--interval", "30", config=config, timeout=30)
    assert second.returncode != 0, second.stdout
    assert f"already running (pid {fleet.proc.pid}); use rmqtui attach / rmqtui ctl" in second.stderr, second.stderr
    quiet = rmqtui("--no-ui", "--no-control", config=config, timeout=30)
    assert quiet.returncode != 0 and "already running" in quiet.stderr, "--no-control started a second fleet"
    assert subscribed(config, 5), "the second rmqtui disturbed the first"

    audit = runtime.fleet_state_dir(config) / "audit.log"
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(line["method"], line["result"]["ok"]) for line in lines] == [
        ("scale", True), ("scale", False), ("restart", False)], str(lines)
    assert lines[1]["role"] == "read-only" and all(line["uid"] == os.geteuid() for line in lines), str(lines)

    # metrics for anyone who may look; unpin is an operator's change, refused here (no autoscaler), audited
    from prometheus_client.parser import text_string_to_metric_families

    metrics = rmqtui("ctl", "--read-only", "metrics", config=config)
    assert metrics.returncode == 0, metrics.stderr
    names = {f.name for f in text_string_to_metric_families(metrics.stdout)}
    assert {"rmqtui_worker_messages_handled", "rmqtui_route_handler_duration_seconds"} <= names, sorted(names)
    unpin = rmqtui("ctl", "unpin", "work", config=config)
    assert unpin.returncode == 1 and "autoscal" in unpin.stderr, unpin.stderr
    assert json.loads(audit.read_text().splitlines()[-1])["method"] == "unpin"

    stopped = rmqtui("ctl", "stop", config=config)
    assert stopped.returncode == 0 and "fleet stopped" in stopped.stdout, stopped.stderr
    code, _, err = fleet.finish(terminate=False)  # it exits by itself
    assert code == 0, err
    assert not any(runtime.fleet_runtime_dir(config).iterdir()), "the sockets outlived the fleet"
    gone = rmqtui("ctl", "status", config=config)
    assert gone.returncode == 3 and "no fleet is running" in gone.stderr, gone.stderr


def test_ctl_without_a_fleet_returns_3(config) -> None:
    for args in (("ctl", "status"), ("ctl", "scale", "work", "2"), ("ctl", "logs")):
        done = rmqtui(*args, config=config)
        assert done.returncode == 3, f"{args}: {done.returncode} {done.stderr}"


def wait_line(h: Headless, needle: str) -> list[str]:
    """Read the child's stderr until a line contains ``needle`` (the read blocks; the test timeout bounds it)."""
    lines = []
    while not lines or needle not in lines[-1]:
        line = h.proc.stderr.readline()
        assert line, f"rmqtui exited before printing {needle!r}: {''.join(lines)}"
        lines.append(line)
    return lines


def test_an_unsafe_runtime_directory_is_refused(config, headless, dirs) -> None:
    unsafe = dirs / "open"
    unsafe.mkdir()
    os.chmod(unsafe, 0o777)
    fleet = headless(config, env=dict(_env(), RUNTIME_DIRECTORY=str(unsafe)))
    code, _, err = fleet.finish(terminate=False)
    assert code == 1, f"rmqtui started in a world-writable runtime directory: {err}"
    assert "accessible to other users" in err and "chmod 700" in err, err
    assert "Traceback" not in err, err
    assert not list(unsafe.iterdir()), "a file was made in an unsafe directory"


def test_control_fails_soft_and_can_be_turned_off(config, headless, dirs) -> None:
    from rmqtui.engine import runtime

    blocked = runtime.fleet_runtime_dir(config) / "control.sock"
    blocked.mkdir()  # something that is not a socket sits where the socket goes
    fleet = headless(config, env=_env())
    early = wait_line(fleet, "fleet started")
    code, _, rest = fleet.finish()
    err = "".join(early) + rest
    assert code == 0, err
    assert err.count("no control socket") == 1, err
    blocked.rmdir()

    off = headless(config, "--no-control")
    wait_line(off, "fleet started")
    done = rmqtui("ctl", "status", config=config)
    assert done.returncode == 3, "--no-control still served a socket"
    assert off.finish()[0] == 0, "the fleet without control did not stop cleanly"


def test_systemd_notify_ready_watchdog_stopping(config, headless, dirs) -> None:
    path = dirs / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind(str(path))
        sink.settimeout(30)
        env = dict(_env(), NOTIFY_SOCKET=str(path), WATCHDOG_USEC="400000")
        fleet = headless(config, env=env)
        got: list[str] = []
        while not any(m.startswith("READY=1") for m in got):
            got.append(sink.recv(4096).decode())
        assert subscribed(config, 2), f"READY=1 came before every worker was subscribed: {got} {status(config)}"
        ready = next(m for m in got if m.startswith("READY=1"))
        assert f"MAINPID={fleet.proc.pid}" in ready, ready
        pings = 0
        while pings < 2:
            pings += sink.recv(4096).decode() == "WATCHDOG=1"
        fleet.proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in got:
            got.append(sink.recv(4096).decode())
        code, _, err = fleet.finish(terminate=False)
        assert code == 0, err
