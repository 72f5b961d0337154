"""Live: the TUI that started a fleet detaches (Q), like tmux; the fleet runs on headless, even after its
terminal is gone, until `rmqtui ctl stop`, and nothing is left then."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.engine.conftest import wait_for

from .test_live_ctl import _env, config, rmqtui, status, subscribed  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(120)


class Terminal:
    """`rmqtui` on a pseudo-terminal of 80x24, its screen collected as bytes."""

    def __init__(self, config) -> None:
        self.main, secondary = pty.openpty()
        os.set_blocking(self.main, False)
        env = dict(_env(), TERM="xterm-256color", COLUMNS="80", LINES="24")
        self.proc = subprocess.Popen([sys.executable, "-m", "rmqtui.cli", "-c", str(config)], cwd=config.parent,
                                     stdin=secondary, stdout=secondary, stderr=secondary, env=env,
                                     start_new_session=True)
        os.close(secondary)
        self.screen = bytearray()

    def pump(self) -> bytes:
        try:
            while chunk := os.read(self.main, 65536):
                self.screen.extend(chunk)
        except (BlockingIOError, OSError):
            pass
        return bytes(self.screen)

    def close(self) -> None:
        if self.main >= 0:
            os.close(self.main)  # the terminal is gone, as when an ssh session drops
            self.main = -1


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_detach_leaves_the_fleet_running_until_ctl_stop(config) -> None:
    term = Terminal(config)
    try:
        wait_for(lambda: b"workers" in term.pump() and subscribed(config, 2), timeout=60,
                 what="the TUI with 2 subscribed workers")
        before = status(config)
        os.write(term.main, b"Q")
        wait_for(lambda: term.pump() is not None and term.proc.poll() is not None, timeout=20,
                 what="the launching process to exit")
        assert term.proc.returncode == 0, term.pump()[-400:]
        said = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", term.pump()).decode(errors="replace")
        found = re.search(r"detached; the fleet keeps running \(pid (\d+)\)", said.replace("\r\n", ""))
        assert found, said[-400:]
        fleet_pid = int(found.group(1))
        assert fleet_pid == before["control"]["pid"], "the message names the fleet's own process"
        family = [fleet_pid] + [c.pid for c in psutil.Process(fleet_pid).children(recursive=True)]
        term.close()
        time.sleep(1.0)  # a moment without a terminal: nothing may notice
        after = status(config)
        assert after is not None, "the detached fleet answers its control socket"
        assert [w["pid"] for w in after["workers"]] == [w["pid"] for w in before["workers"]], \
            "the same workers serve on; none was restarted by the detach or the closed terminal"
        assert os.getsid(fleet_pid) == fleet_pid, "the fleet left the terminal's session"
        stopped = rmqtui("ctl", "stop", config=config)
        assert stopped.returncode == 0 and "fleet stopped" in stopped.stdout, stopped.stderr
        wait_for(lambda: not _alive(family), timeout=20, what="the fleet, its broker and workers to exit")
    finally:
        term.close()
        if term.proc.poll() is None:
            term.proc.kill()


def _started(config) -> tuple[Terminal, list[int]]:
    term = Terminal(config)
    wait_for(lambda: b"workers" in term.pump() and subscribed(config, 2), timeout=60,
             what="the TUI with 2 subscribed workers")
    kids = psutil.Process(term.proc.pid).children(recursive=True)
    return term, [p.pid for p in kids]


def test_a_closing_terminal_without_detach_drains_once_and_leaves_nothing(config) -> None:
    term, family = _started(config)
    try:
        # what a closing terminal and then the shell send to the job: two hangups, one drain (status 0)
        os.killpg(term.proc.pid, signal.SIGHUP)
        os.killpg(term.proc.pid, signal.SIGHUP)
        wait_for(lambda: term.pump() is not None and term.proc.poll() is not None, timeout=30, what="the exit")
        assert term.proc.returncode == 0, f"a hangup drains; a forced stop would be 130: {term.proc.returncode}"
        assert b"SIGHUP received, draining" in term.pump()
        wait_for(lambda: not _alive(family), timeout=20, what="every fleet process to exit")
    finally:
        term.close()
        if term.proc.poll() is None:
            term.proc.kill()


def test_sigkill_of_the_waiter_stops_the_fleet(config) -> None:
    term, family = _started(config)
    try:
        term.proc.kill()
        term.proc.wait()
        wait_for(lambda: not _alive(family), timeout=30, what="the fleet (drained on SIGTERM) to exit")
    finally:
        term.close()
