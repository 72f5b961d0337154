"""No worker outlives a SIGKILLed supervisor, even one stuck in its handler or stopped; ps names workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from rmqtui.testing.mqtt import of_config

from .conftest import publish, wait_for

STUCK = '''
import os, time
from pathlib import Path

def handle(msg):
    Path(__file__).with_name("busy").write_text(str(os.getpid()))
    time.sleep(3600)
'''

SUPERVISOR = '''
import sys, time
from rmqtui.engine.config import load
from rmqtui.engine.supervisor import Fleet
fleet = Fleet(load(sys.argv[1]))
fleet.start()
print("started", flush=True)
time.sleep(3600)
'''


@pytest.mark.parametrize("how", ["stuck", "stopped"])
def test_workers_die_with_a_sigkilled_supervisor(project, how):
    project.handler("stuck", STUCK)
    path = project.write([{"name": "s", "topic": "s/{n}", "handler": "handlers.stuck:handle", "workers": 2}])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(path)], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    family: list[psutil.Process] = []
    try:
        assert sup.stdout.readline().strip() == "started", "the supervisor started"
        me = psutil.Process(sup.pid)
        def titles() -> list[str]:
            out = []
            for p in me.children(recursive=True):
                try:
                    out.append(" ".join(p.cmdline()).strip())
                except psutil.Error:  # exited meanwhile
                    pass
            return sorted(t for t in out if t.startswith("rmqtui: worker"))

        wait_for(lambda: len(titles()) == 2, what="two workers named in ps", timeout=30)
        assert titles() == ["rmqtui: worker s/0", "rmqtui: worker s/1"], "ps shows each worker's route and slot"
        busy = project.root / "handlers" / "busy"
        publish(of_config(path), lambda i: f"s/{i}", 1)
        wait_for(busy.exists, what="a worker stuck in its handler")
        stuck = psutil.Process(int(busy.read_text()))
        if how == "stopped":
            stuck.send_signal(signal.SIGSTOP)
        family = me.children(recursive=True)
        assert stuck in family, "the stuck worker is the supervisor's descendant"
        os.kill(sup.pid, signal.SIGKILL)
        sup.wait(10)
        python_family = [p for p in family if "mosquitto" not in p.name()]
        gone, alive = psutil.wait_procs(python_family, timeout=15)
        assert not alive, f"still alive after the supervisor's SIGKILL: {[p.cmdline() for p in alive]}"
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait(10)
        for p in family:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
