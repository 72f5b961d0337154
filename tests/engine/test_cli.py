"""The `rmqtui` command as a user runs it: real subprocesses, real broker, real signals."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from rmqtui.engine.broker import free_port

from .conftest import wait_for

RMQTUI = [sys.executable, "-m", "rmqtui.cli"]


def run(args, cwd, timeout=60):
    return subprocess.run(RMQTUI + args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_no_config_says_so_and_suggests_init(tmp_path):
    r = run(["--no-ui"], tmp_path)
    assert r.returncode == 2
    assert "no routemq.toml" in r.stderr and "rmqtui init" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_config_exits_2_with_file_line_and_fix(tmp_path):
    (tmp_path / "routemq.toml").write_text('[[routes]]\nname = "a"\ntopic = "a/{x}"\nhandler = "h:f"\nqos = 3\n')
    r = run(["check"], tmp_path)
    assert r.returncode == 2
    assert "routemq.toml:5" in r.stderr and "qos" in r.stderr and "fix:" in r.stderr
    assert "Traceback" not in r.stderr


def test_init_never_overwrites(tmp_path):
    r = run(["init"], tmp_path)
    assert r.returncode == 0 and (tmp_path / "routemq.toml").exists() and (tmp_path / "app_routes").is_dir()
    (tmp_path / "routemq.toml").write_text("# mine\n")
    r = run(["init"], tmp_path)
    assert r.returncode == 0 and "kept existing" in r.stdout
    assert (tmp_path / "routemq.toml").read_text() == "# mine\n"


def test_missing_mosquitto_binary_is_a_clear_start_error(tmp_path):
    run(["init"], tmp_path)
    cfg = tmp_path / "routemq.toml"
    cfg.write_text(cfg.read_text().replace('mosquitto = "mosquitto"', 'mosquitto = "no-such-mosquitto"'))
    r = run(["--no-ui", "--port", str(free_port())], tmp_path)
    assert r.returncode == 1
    assert "apt-get install" in r.stderr and "Traceback" not in r.stderr


class Headless:
    """`rmqtui --no-ui --json` in a started project, with its output read in a thread."""

    def __init__(self, cwd: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(RMQTUI + ["--no-ui", "--json", "--interval", "0.3", "--port", str(self.port)],
                                     cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def status(self):
        return next((x for x in reversed(self.lines) if "routes" in x), None)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)


@pytest.fixture
def started(tmp_path):
    assert run(["init"], tmp_path).returncode == 0
    h = Headless(tmp_path)
    try:
        wait_for(lambda: (s := h.status()) and s["broker"]["state"] == "up"
                 and [w["state"] for w in s["workers"]] == ["subscribed"] * 6, timeout=20, what="6 workers subscribed")
        yield h
    finally:
        if h.proc.poll() is None:
            h.proc.kill()
            h.proc.wait()


def _all_gone(procs: list[psutil.Process]) -> bool:
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def test_headless_runs_the_example_fleet_and_counts_load(started, tmp_path):
    snap = started.status()
    assert snap["broker"]["embedded"] is True and snap["broker"]["tcp"] is False
    sock = snap["broker"]["unix_path"]
    assert sock and stat.S_ISSOCK(os.stat(sock).st_mode), "the embedded broker listens on its private socket"
    r = run(["load", "-n", "300", "-r", "2000"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "sent 300, acknowledged 300" in r.stdout
    assert sock in r.stdout, "load must find the running fleet's broker"
    wait_for(lambda: started.status()["handled"] >= 300, timeout=20, what="300 handled")
    per_route = {r["name"]: r["handled"] for r in started.status()["routes"]}
    assert per_route == {"sensor-data": 100, "telemetry": 100, "alerts": 100}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_drains_and_leaves_no_process(started, sig):
    procs = started.descendants()
    assert len(procs) >= 7  # 6 workers and the broker, plus multiprocessing's helpers
    started.proc.send_signal(sig)
    assert started.proc.wait(timeout=30) == 0
    wait_for(lambda: _all_gone(procs), timeout=5, what="every child to exit")
    assert "draining the fleet" in started.proc.stderr.read()
    started.reader.join(5)
    logs = [x["log"]["message"] for x in started.lines if "log" in x]
    # stopping is not scaling down: each worker keeps its session, so the broker queues for the next start
    assert "fleet stopped" in logs and sum("stopped; its session is kept" in m for m in logs) == 6, logs


def test_sigkill_of_the_supervisor_leaves_no_process(started):
    procs = started.descendants()
    started.proc.kill()
    t0 = time.monotonic()
    wait_for(lambda: _all_gone(procs), timeout=5, what="workers and broker to notice and exit")
    print(f"all {len(procs)} children gone {time.monotonic() - t0:.2f}s after SIGKILL of the supervisor")


def test_engine_and_headless_import_without_textual():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'textual' or name.startswith('textual.'):\n"
        "            raise ImportError('textual is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import rmqtui.engine.supervisor, rmqtui.engine.worker, rmqtui.engine.config, rmqtui.engine.stats\n"
        "import rmqtui.headless, rmqtui.cli, rmqtui.loadgen\n"
        "assert not [m for m in sys.modules if m.startswith('textual')]\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_tui_on_a_terminal_stops_the_fleet_on_signal(tmp_path, sig):
    import pty

    assert run(["init"], tmp_path).returncode == 0
    main, secondary = pty.openpty()
    os.set_blocking(main, False)
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
    proc = subprocess.Popen(RMQTUI + ["--port", str(free_port())], cwd=tmp_path, stdin=secondary,
                            stdout=secondary, stderr=secondary, env=env, start_new_session=True)
    os.close(secondary)
    screen = bytearray()

    def pump():
        try:
            while chunk := os.read(main, 65536):
                screen.extend(chunk)
        except (BlockingIOError, OSError):
            pass
        return proc

    try:
        me = psutil.Process(proc.pid)
        wait_for(lambda: pump() and len(me.children(recursive=True)) >= 9 and b"workers" in screen, timeout=20,
                 what="the TUI and its fleet")
        procs = me.children(recursive=True)
        proc.send_signal(sig)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            pump()
            time.sleep(0.05)
        assert proc.returncode == 0, f"a signal drains the fleet cleanly, so the status is 0, got {proc.returncode}"
        wait_for(lambda: _all_gone(procs), timeout=5, what="every child to exit")
        assert b"Traceback" not in screen
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)


def test_sigusr1_reloads_worker_counts_and_survives_a_broken_file(started, tmp_path):
    cfg = tmp_path / "routemq.toml"
    good = cfg.read_text()
    cfg.write_text(good + "\n[[routes]]\nname = 'x'\n")  # missing topic and handler
    started.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: any("reload refused" in x.get("log", {}).get("message", "") for x in started.lines),
             timeout=10, what="the refusal")
    assert started.proc.poll() is None
    cfg.write_text(good.replace("workers = 3 ", "workers = 4 "))
    started.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: (s := started.status()) and next(r for r in s["routes"] if r["name"] == "sensor-data")["running"]
             == 4, timeout=15, what="4 sensor-data workers")
