"""The spare worker process and the fork server's set-up: an added worker is the spare, a lost spare is
replaced, none is kept when turned off, and no worker re-runs the supervisor's main script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from rmqtui.engine.snapshot import WorkerState

from .conftest import wait_for

ROUTE = {"name": "s", "topic": "s/{n}", "handler": "handlers.noop:handle", "shared": True, "workers": 1}
SPARE_TITLE = "rmqtui: spare worker"


def _spares() -> list[int]:
    """pids of this test's descendants that ps names as a spare worker."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if " ".join(p.cmdline()).strip() == SPARE_TITLE:
                out.append(p.pid)
        except psutil.Error:  # exited meanwhile
            pass
    return out


def _subscribed(fleet, n: int) -> list[int]:
    pids = [w.pid for w in fleet.snapshot().workers if w.state is WorkerState.SUBSCRIBED and w.pid]
    return pids if len(pids) == n else []


NAMES = """
import multiprocessing, os

def handle(msg):
    with open(os.path.join(os.path.dirname(__file__), "names.txt"), "a") as f:
        f.write(multiprocessing.current_process().name + "\\n")
"""


def _fleet(project, start_fleet):
    project.handler("noop", NAMES)
    fleet = start_fleet(project.write([ROUTE]))
    wait_for(lambda: _subscribed(fleet, 1), what="the first worker subscribed")
    return fleet


def test_an_added_worker_is_the_spare_and_a_new_spare_follows(project, start_fleet):
    fleet = _fleet(project, start_fleet)
    spare = wait_for(_spares, what="a spare worker")[0]
    assert fleet.add_worker("s").ok
    pids = wait_for(lambda: _subscribed(fleet, 2), what="the added worker subscribed")
    assert spare in pids, "the added slot went to the spare instead of a new fork"
    # a spare becomes its slot's worker in every way, its process name too (handlers and tools may read it)
    from rmqtui.testing.mqtt import connect, new_client
    names = project.root / "handlers" / "names.txt"
    client = new_client(fleet)
    connect(client, fleet)
    client.loop_start()
    for i in range(40):
        client.publish(f"s/{i}", b"x", qos=1).wait_for_publish(5)
    wait_for(lambda: names.exists() and {"rmqtui-worker-s/0", "rmqtui-worker-s/1"} <= set(names.read_text().split()),
             what="both workers handling messages under their slots' names")
    client.disconnect()
    client.loop_stop()
    wait_for(lambda: [p for p in _spares() if p != spare], what="a new spare")
    assert len(_spares()) == 1, "one spare per fleet"
    # stopping the fleet ends the spare too: start_fleet's teardown checks that no child is left


def test_a_lost_spare_is_replaced_and_adds_still_work(project, start_fleet):
    fleet = _fleet(project, start_fleet)
    spare = wait_for(_spares, what="a spare worker")[0]
    os.kill(spare, signal.SIGKILL)
    wait_for(lambda: [p for p in _spares() if p != spare], what="a new spare after the first was killed")
    assert fleet.add_worker("s").ok
    wait_for(lambda: _subscribed(fleet, 2), what="the added worker subscribed")


def test_no_spare_when_turned_off(project, start_fleet, monkeypatch):
    monkeypatch.setenv("RMQTUI_SPARE_WORKER", "0")
    fleet = _fleet(project, start_fleet)
    time.sleep(0.5)  # several times the delay before a spare would start
    assert _spares() == []
    assert fleet.add_worker("s").ok
    wait_for(lambda: _subscribed(fleet, 2), what="the added worker subscribed (cold start)")


SUPERVISOR = '''
import sys
from pathlib import Path

with open(Path(sys.argv[2]), "a") as f:  # every run of this script, under whichever name
    f.write(__name__ + "\\n")

if __name__ == "__main__":
    import time
    from rmqtui.engine.config import load
    from rmqtui.engine.snapshot import WorkerState
    from rmqtui.engine.supervisor import Fleet

    fleet = Fleet(load(sys.argv[1]))
    fleet.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ws = fleet.snapshot().workers
        if len(ws) == 2 and all(w.state is WorkerState.SUBSCRIBED for w in ws):
            break
        time.sleep(0.05)
    fleet.stop(timeout=10)
    print("subscribed" if len(ws) == 2 else "timeout", flush=True)
'''


def test_workers_do_not_rerun_the_supervisors_main_script(project, tmp_path):
    project.handler("noop", "def handle(msg):\n    pass\n")
    path = project.write([{**ROUTE, "workers": 2}])
    script, runs = tmp_path / "supervisor.py", tmp_path / "runs.txt"
    script.write_text(SUPERVISOR)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([sys.executable, str(script), str(path), str(runs)], env=env, capture_output=True,
                       text=True, timeout=90)
    assert r.stdout.strip() == "subscribed", r.stderr[-2000:]
    assert runs.read_text().split() == ["__main__"], "a worker (or the spare) ran the main script again"
