"""Brokers for doctor tests, each started by the test on a free loopback port and killed at teardown."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rmqtui.engine.broker import free_port, port_is_free
from tests.engine.conftest import wait_for


def _mosquitto() -> str:
    found = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)
    if found is None:
        pytest.skip("mosquitto is not installed (sudo apt-get install -y mosquitto)")
    return found


@pytest.fixture
def private_dirs(tmp_path, monkeypatch):
    """Runtime and state directories of the test's own, so the user's real ones are never judged."""
    for name in ("RUNTIME_DIRECTORY", "STATE_DIRECTORY"):
        d = tmp_path / name.lower()
        d.mkdir(mode=0o700)
        monkeypatch.setenv(name, str(d))
    return tmp_path


@pytest.fixture
def start_broker(tmp_path):
    """``start_broker(kind, extra_conf="")`` -> port; kind is "mosquitto" or "amqtt"."""
    procs: list[subprocess.Popen] = []

    def _start(kind: str, extra: str = "") -> int:
        port = free_port()
        log = open(tmp_path / f"{kind}-{port}.log", "wb")
        if kind == "mosquitto":
            conf = tmp_path / f"mosquitto-{port}.conf"
            anonymous = "" if "allow_anonymous" in extra else "allow_anonymous true\n"
            me = pwd.getpwuid(os.getuid()).pw_name  # as root, Mosquitto would switch to a user that cannot read tmp
            conf.write_text(f"listener {port} 127.0.0.1\nuser {me}\n{anonymous}{extra}")
            cmd = [_mosquitto(), "-c", str(conf)]
        else:
            exe = Path(sys.executable).parent / "amqtt"
            if not exe.exists():
                pytest.skip("amqtt is not installed: pip install amqtt (it is in the `test` extra)")
            conf = tmp_path / f"amqtt-{port}.yaml"
            conf.write_text(f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\nplugins:\n"
                            f"  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n")
            cmd = [str(exe), "-c", str(conf)]
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL))
        log.close()
        wait_for(lambda: not port_is_free("127.0.0.1", port) or procs[-1].poll() is not None, timeout=20,
                 what=f"{kind} to answer on port {port}")
        assert procs[-1].poll() is None, f"{kind} exited: {(tmp_path / f'{kind}-{port}.log').read_text()[-500:]}"
        return port

    yield _start
    for p in procs:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
