"""Two hosts in one share group on one external Mosquitto, tested on one machine as two processes.

Host A and host B (different ``RMQTUI_HOST_ID``, so different client ids) each run `rmqtui --no-ui` with
two workers on the same route and group.  Numbered QoS 1 messages flow; host B is SIGKILLed whole
(supervisor, fork server, workers).  Its persistent sessions stay in the group, and Mosquitto keeps
giving them their share, so messages are stranded there; `rmqtui ctl adopt B` on host A hands them to A's
workers.  The table printed at the end gives the figures (run with -s).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from rmqtui.engine.broker import EmbeddedBroker, free_port
from rmqtui.testing.mqtt import connect, new_client
from tests.chaos.harness import ChaosProject, DeadLetters, Publisher, route, settle, unaccounted, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


class Host:
    """One host: a chaos project and its headless fleet in a session of its own."""

    def __init__(self, root: Path, host_id: str, port: int, **fleet) -> None:
        self.host_id, self.broker_port = host_id, port
        self.project = ChaosProject(root)
        self.config = self.project.write([route("work", 2)], broker={"embedded": False, "port": port},
                                         fleet=fleet or None)
        self.out = root / "headless.out"
        env = dict(os.environ, PYTHONPATH=str(ROOT), RMQTUI_HOST_ID=host_id)
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "rmqtui.cli", "--no-ui", "--json", "--interval",
                                          "0.5", "-c", str(self.config)], cwd=root, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def subscribed(self) -> int:
        for line in reversed(self.out.read_text().splitlines()):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if "workers" in data:
                return sum(1 for w in data["workers"] if w["state"] == "subscribed")
        return 0

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rmqtui.cli", "ctl", "-c", str(self.config), *args],
                              capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))

    def handled(self) -> set[int]:
        return set(self.project.handled("work"))

    def family(self) -> list[psutil.Process]:
        me = psutil.Process(self.proc.pid)
        return [me] + me.children(recursive=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@contextlib.contextmanager
def two_hosts(tmp_path: Path, **a_fleet):
    """Host A (with ``a_fleet`` settings) and host B on a shared broker (persistence on), both with 2 subscribed
    workers, a dead-letter sink and a numbered QoS 1 publisher at 200 msg/s; everything stopped afterwards."""
    broker = EmbeddedBroker(tmp_path / "broker", port=free_port())
    broker.start()
    hosts, pub, sink = [], None, None
    try:
        hosts += [Host(tmp_path / "a", "host-a", broker.port, **a_fleet), Host(tmp_path / "b", "host-b", broker.port)]
        a, b = hosts
        wait_until(lambda: a.subscribed() == 2 and b.subscribed() == 2, 60, "2 subscribed workers on each host")
        sink = DeadLetters(broker.port)
        pub = Publisher(broker.port, "work", rate=200).start()
        wait_until(lambda: len(a.handled()) > 50 and len(b.handled()) > 50, 30, "both hosts handling")
        yield a, b, pub, sink
    finally:
        if pub is not None:
            pub.stop()
        if sink is not None:
            sink.close()
        for host in hosts:
            host.stop()
        broker.stop()


def kill_whole_host(host: Host) -> None:
    """SIGKILL the host's session, then whatever of it left the session (the fork server, workers)."""
    family = host.family()
    os.killpg(host.proc.pid, signal.SIGKILL)
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    host.proc.wait()
    wait_until(lambda: not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
               20, "every process of the host to be gone")


def test_a_dead_hosts_backlog_is_stranded_until_adopted_then_nothing_is_lost(tmp_path):
    with two_hosts(tmp_path) as (a, b, pub, sink):
        split = (len(a.handled()), len(b.handled()))
        alive = a.ctl("adopt", "host-b", "--force")
        assert alive.returncode == 1 and "is alive" in alive.stderr, "a live host is never adopted: " + alive.stderr
        kill_whole_host(b)
        time.sleep(1.5)  # publishing on while B is dead: its sessions keep their share
        pub.stop()
        acked = pub.acked()
        settle(lambda: len(a.handled()), None, 20, quiet=2.0)  # A has handled all it will get
        stranded = _missing(acked, a, b, sink)
        doctor = subprocess.run([sys.executable, "-m", "rmqtui.cli", "doctor", "-c", str(a.config)], capture_output=True,
                                text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert "host-b" in doctor.stdout and "rmqtui ctl adopt host-b" in doctor.stdout, doctor.stdout + doctor.stderr
        refused = a.ctl("adopt", "host-a")
        assert refused.returncode == 1 and "its own host id" in refused.stderr, refused.stderr
        done = a.ctl("adopt", "host-b")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "adopted host-b" in done.stdout, done.stdout
        wait_until(lambda: not _missing(acked, a, b, sink), 60, "every acknowledged message handled after the adoption")
        lost = _missing(acked, a, b, sink)
        again = a.ctl("adopt", "host-b")
        assert again.returncode == 1 and "already adopted" in again.stderr, again.stderr
        print(f"\ntwo hosts, one group, QoS 1 at 200 msg/s: split before the kill A {split[0]} / B {split[1]}; "
              f"published {len(acked)}; stranded in host B's sessions without adoption: {len(stranded)}; "
              f"after `ctl adopt host-b`: lost {len(lost)}; {done.stdout.strip()}")
        assert stranded, "Mosquitto gives a dead member's sessions their share: some messages must be stranded"
        assert not lost, f"lost after adoption: {lost[:20]}"


def test_adopt_after_takes_over_a_dead_host_by_itself_and_ignores_a_forged_death(tmp_path):
    """``[fleet] adopt_after``: host A adopts host B once B has been dead that long, never while B runs, even
    when another client writes a forged ``dead`` record for B; nothing is lost."""
    with two_hosts(tmp_path, adopt_after=2.0) as (a, b, pub, sink):
        forger = new_client(b.broker_port, "forger")
        connect(forger, b.broker_port)
        forger.loop_start()
        forger.publish("rmqtui/hosts/chaos/host-b/state", json.dumps({"state": "dead"}), qos=1,
                       retain=True).wait_for_publish(5)
        forger.disconnect()
        forger.loop_stop()
        before = len(b.handled())
        time.sleep(3.0)  # longer than adopt_after: B must keep its workers
        wait_until(lambda: len(b.handled()) > before + 100, 30,
                   "host B to keep handling: the forged death was not believed")
        assert b.proc.poll() is None and b.subscribed() == 2
        kill_whole_host(b)
        time.sleep(1.5)
        pub.stop()
        acked = pub.acked()
        wait_until(lambda: not _missing(acked, a, b, sink), 60, "every acknowledged message handled after adopt_after")
        again = a.ctl("adopt", "host-b")
        assert again.returncode == 1 and "already adopted" in again.stderr, again.stderr
        logs = a.ctl("logs", "--wide").stdout
        assert logs.count("adopt_after: adopted host-b") == 1, logs[-2000:]


def _missing(acked, a: Host, b: Host, sink) -> list[int]:
    """Acknowledged messages neither host handled nor dead-lettered."""
    return unaccounted(acked, {s: 1 for s in a.handled() | b.handled()}, sink.seqs("work"))

