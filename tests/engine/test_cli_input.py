"""Issue 12: every bad command line gets a clear answer and a documented exit status, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
import pytest

from rmqtui import exitcodes
from rmqtui.engine.broker import EmbeddedBroker, free_port
from rmqtui.testing.mqtt import connect, new_client, of_config

from .conftest import wait_for

RMQTUI = [sys.executable, "-m", "rmqtui.cli"]


def run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(RMQTUI + args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert run(["init"], tmp_path).returncode == 0
    return tmp_path


# (id, arguments, exit status, words the error must hold); none of them may start a fleet.
BAD_ARGS = [
    ("--port 70000", ["--no-ui", "--port", "70000"], 2, "1 to 65535"),
    ("--port -1", ["--no-ui", "--port", "-1"], 2, "1 to 65535"),
    ("--port 0", ["--no-ui", "--port", "0"], 2, "1 to 65535"),
    ("--port x", ["--no-ui", "--port", "x"], 2, "not a number"),
    ("--interval nan", ["--no-ui", "--interval", "nan"], 2, "out of range"),
    ("--interval 0", ["--no-ui", "--interval", "0"], 2, "out of range"),
    ("--interval 1e-9", ["--no-ui", "--interval", "1e-9"], 2, "0.05 to 86400"),
    ("--json without --no-ui", ["--json"], 2, "only applies with --no-ui"),
    ("--interval without --no-ui", ["--interval", "1"], 2, "only applies with --no-ui"),
    ("load --port -1", ["load", "--port", "-1"], 2, "1 to 65535"),
    ("load -r nan", ["load", "-r", "nan"], 2, "out of range"),
    ("load -r inf", ["load", "-r", "inf"], 2, "out of range"),
    ("load -r 0", ["load", "-r", "0"], 2, "out of range"),
    ("load -n 0", ["load", "-n", "0"], 2, "1 to 10,000,000"),
    ("load unknown route", ["load", "--route", "nosuch", "--route", "alerts"], 2, "no route called 'nosuch'"),
    ("--config /dev/zero", ["check", "-c", "/dev/zero"], 2, "not a regular file"),
    ("--config /dev/urandom", ["--no-ui", "-c", "/dev/urandom"], 2, "not a regular file"),
    ("--config a directory", ["check", "-c", "."], 2, "a directory"),
    ("--config missing", ["check", "-c", "nope.toml"], 2, "does not exist"),
]


@pytest.mark.parametrize(("args", "status", "words"), [c[1:] for c in BAD_ARGS], ids=[c[0] for c in BAD_ARGS])
def test_bad_command_line(project: Path, args: list[str], status: int, words: str) -> None:
    r = run(args, project)
    assert r.returncode == status, f"exit {r.returncode}, stderr: {r.stderr}"
    assert words in r.stderr, r.stderr
    assert "Traceback" not in r.stderr + r.stdout, r.stderr


def test_fifo_as_config_is_refused(project: Path) -> None:
    os.mkfifo(project / "fifo.toml")
    r = run(["check", "-c", "fifo.toml"], project, timeout=30)
    assert r.returncode == exitcodes.BAD_INPUT and "not a regular file" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("edit", "status", "words"),
    [
        (lambda t: "\ufeff" + t, 0, "ok, 3 routes"),
        (lambda t: t.replace('"alerts/{level}"', '"alerts/{x}{y}"'), 2, "own level"),
        (lambda t: t.replace("heartbeat_interval = 1.0", "heartbeat_interval = nan"), 2, "not a finite number"),
    ],
    ids=["utf-8 BOM", "two parameters in a level", "nan"],
)
def test_check_of_edited_init_file(project: Path, edit, status: int, words: str) -> None:
    cfg = project / "routemq.toml"
    cfg.write_text(edit(cfg.read_text()))
    r = run(["check"], project)
    assert r.returncode == status, r.stderr
    assert words in (r.stdout if status == 0 else r.stderr)
    assert "Traceback" not in r.stderr


@pytest.fixture
def broker(tmp_path: Path):
    b = EmbeddedBroker(tmp_path / "rt", port=free_port())
    b.start()
    yield b
    b.stop()


def _first_message(port: int) -> threading.Event:
    got = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{os.getpid()}")
    c.on_connect = lambda c, u, f, rc, p: c.subscribe("#")
    c.on_message = lambda c, u, m: got.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    got.client = c  # type: ignore[attr-defined]
    return got


def test_load_into_a_closed_pipe_ends_without_traceback(project: Path, broker: EmbeddedBroker) -> None:
    proc = subprocess.Popen(RMQTUI + ["load", "-n", "30000", "-r", "100000", "-q", "0", "--port", str(broker.port)],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout.readline().startswith(b"publishing")
    proc.stdout.close()  # what `| head -1` does
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read().decode()
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == exitcodes.FAILURE, err


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["broker killed", "broker frozen"])
def test_load_notices_a_lost_broker(project: Path, broker: EmbeddedBroker, how: signal.Signals) -> None:
    seen = _first_message(broker.port)
    proc = subprocess.Popen(RMQTUI + ["load", "-n", "100000", "-r", "200", "--port", str(broker.port)], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        wait_for(seen.is_set, timeout=20, what="load's first message at the broker")
        seen.client.loop_stop()  # type: ignore[attr-defined]
        broker.process.send_signal(how)
        t0 = time.monotonic()
        proc.wait(timeout=60)
        print(f"load exited {time.monotonic() - t0:.2f}s after the broker got {how.name}")
    finally:
        if how == signal.SIGSTOP:
            broker.process.send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert proc.returncode == exitcodes.FAILURE, err
    assert "lost the broker" in err and "Traceback" not in err, err


def test_exit_status_table_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Using it"):readme.index("### Keys in the TUI")]
    for code in (exitcodes.OK, exitcodes.FAILURE, exitcodes.BAD_INPUT, exitcodes.NO_FLEET, exitcodes.FORCED):
        assert f"| {code} |" in section, f"exit status {code} is missing from the README's table"


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


SLOW_PROJECT = """
[broker]
port = {port}

[fleet]
handlers = "slow"
drain_timeout = 60.0
heartbeat_interval = 0.2

[[routes]]
name = "slow"
topic = "slow/{{x}}"
handler = "slow:handle"
"""


def test_headless_second_signal_is_a_forced_stop(tmp_path: Path) -> None:
    """A clean drain exits 0 (test_cli); a second signal during a drain kills the workers: 130."""
    import json

    (tmp_path / "slow.py").write_text("import time\n\ndef handle(msg):\n    time.sleep(120)\n")
    port = free_port()
    (tmp_path / "routemq.toml").write_text(SLOW_PROJECT.format(port=port))
    proc = subprocess.Popen(RMQTUI + ["--no-ui", "--json", "--interval", "0.2"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    lines: list[dict] = []
    errors: list[str] = []
    readers = [threading.Thread(target=lambda: lines.extend(json.loads(x) for x in proc.stdout), daemon=True),
               threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)]
    for t in readers:
        t.start()

    def worker() -> dict | None:
        status = next((x for x in reversed(lines) if "workers" in x), None)
        return status["workers"][0] if status and status["workers"] else None

    try:
        wait_for(lambda: (w := worker()) and w["state"] == "subscribed", timeout=30, what="the worker subscribed")
        pub = new_client(of_config(tmp_path / "routemq.toml"), f"pub-{os.getpid()}")
        connect(pub, of_config(tmp_path / "routemq.toml"))
        pub.loop_start()
        pub.publish("slow/1", b"x", qos=1).wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()
        wait_for(lambda: (w := worker()) and w["in_flight"] >= 1, timeout=20, what="the handler busy")
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: any("draining the fleet" in e for e in errors), timeout=20, what="the drain to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == exitcodes.FORCED, "".join(errors)
        wait_for(lambda: not [c for c in children if _alive(c)],
                 timeout=10, what="every child of the forced fleet to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not any("Traceback" in e for e in errors), "".join(errors)


def test_headless_into_a_closed_pipe_drains_without_traceback(project: Path) -> None:
    proc = subprocess.Popen(RMQTUI + ["--no-ui", "--interval", "0.2", "--port", str(free_port())], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline(), "a first status line"
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.stdout.close()  # `rmqtui --no-ui | head -1`
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()
    assert proc.returncode == exitcodes.FAILURE, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    wait_for(lambda: not [c for c in children if _alive(c)], timeout=10, what="the fleet to stop")
