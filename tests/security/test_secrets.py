"""The broker password never sits in a child's environment, where handlers and /proc could read it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil

from rmqtui.testing import wait_for

RMQTUI = [sys.executable, "-m", "rmqtui.cli"]
SECRET = "pw-7f3c1e-never-in-environ"


def test_password_is_not_inherited_by_broker_fork_server_or_workers(tmp_path: Path):
    assert subprocess.run(RMQTUI + ["init"], cwd=tmp_path, capture_output=True, timeout=60).returncode == 0
    env = dict(os.environ, MQTT_PASSWORD=SECRET)
    proc = subprocess.Popen(RMQTUI + ["--no-ui", "--json", "--interval", "0.3"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []
    threading.Thread(target=lambda: [lines.append(json.loads(x)) for x in proc.stdout], daemon=True).start()
    try:
        wait_for(lambda: any("routes" in x and [w["state"] for w in x["workers"]] == ["subscribed"] * 6
                             for x in lines), timeout=30, what="6 workers subscribed")
        children = psutil.Process(proc.pid).children(recursive=True)
        names = sorted({c.name() for c in children})
        assert len(children) >= 7, f"expected the broker, fork server and 6 workers, found {names}"
        leaking = []
        for child in children:  # rmqtui itself was given the variable; what matters is what it passes on
            try:
                if SECRET.encode() in Path(f"/proc/{child.pid}/environ").read_bytes():
                    leaking.append(f"{child.pid} {child.name()}")
            except (OSError, psutil.NoSuchProcess):
                pass
        assert not leaking, f"the password is in the environment of: {leaking}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
