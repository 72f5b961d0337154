"""Logs that last and cannot drown the UI: captured print/stderr, rotation, the rate gate, the fleet log."""

from __future__ import annotations

import os
import stat

from rmqtui.engine import logfiles
from rmqtui.engine.logfiles import LINE_LIMIT, FleetLog, LineCapture, RateGate, rotate
from rmqtui.engine.protocol import Drain
from rmqtui.headless import quit_summary

from .conftest import publish, wait_for
from .worker_kit import Client, broker, make_spec, subscribed, wait_beat, workers, write_handlers

__all__ = ["broker", "workers"]  # fixtures

PRINTER = '''
import sys

def handle(msg):
    print("hello", msg.params["n"])
    sys.stderr.write("oops \\x1b[31mred\\n")
    print("x" * 5000)
    print("no newline yet", end="")
'''


def test_print_and_stderr_become_records_and_stay_in_the_slot_file(tmp_path, broker, workers):
    write_handlers(tmp_path, PRINTER)
    log_file = tmp_path / "r-0.log"
    w = workers(make_spec(tmp_path, broker.settings(), log_file=str(log_file)))
    wait_for(lambda: subscribed(w), what="the worker to subscribe")
    pub = Client(broker.port)
    pub.publish("t/7", b"x")
    wait_beat(w, lambda b: b.handled == 1, "1 handled message")
    w.send(Drain(keep_session=False, timeout=5))
    assert w.wait_exit() == 0
    lines = [(ln.level, ln.message) for ln in w.logs]
    assert ("INFO", "stdout: hello 7") in lines, lines
    oops = [m for lv, m in lines if m.startswith("stderr: oops")]
    assert oops and "\x1b" not in oops[0] and lines[[m for _, m in lines].index(oops[0])][0] == "WARNING", lines
    long = [m for _, m in lines if m.startswith("stdout: xxx")]
    assert len(long) == 1 and len(long[0]) <= len("stdout: ") + LINE_LIMIT + len(" [cut]"), "a long line is cut"
    assert ("INFO", "stdout: no newline yet") in lines, "a partial line is sent when the worker ends"
    text = log_file.read_text()
    assert "hello 7\n" in text and "oops" in text and "x" * 5000 in text, "the file keeps every byte"
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    pub.close()


FLOOD = '''
import logging
log = logging.getLogger("flood")

def handle(msg):
    for i in range(3000):
        log.debug("debug record %d", i)
'''


def test_a_debug_flood_is_rate_limited_at_the_source_with_a_dropped_line(tmp_path, broker, workers):
    write_handlers(tmp_path, FLOOD)
    w = workers(make_spec(tmp_path, broker.settings(), log_level="DEBUG"))
    wait_for(lambda: subscribed(w), what="the worker to subscribe")
    pub = Client(broker.port)
    pub.publish("t/1", b"x")
    wait_beat(w, lambda b: b.handled == 1, "1 handled message")
    wait_for(lambda: any("log records dropped (rate limit)" in ln.message for ln in w.logs),
             what="the dropped-records line")

    def accounted() -> bool:
        logs = list(w.logs)
        sent = sum(1 for ln in logs if ln.message.startswith("debug record"))
        return sent + sum(int(ln.message.split()[0]) for ln in logs if "dropped (rate limit)" in ln.message) >= 2999

    # the worker reports drops at most once a second: a report that falls inside the flood counts only part of
    # it, and the rest comes in the next line a second later
    wait_for(accounted, what="every refused record counted in the dropped-records lines")
    sent = sum(1 for ln in w.logs if ln.message.startswith("debug record"))
    dropped = [ln for ln in w.logs if "dropped (rate limit)" in ln.message]
    assert sent < 3000, f"{sent} of 3000 debug records went through"
    assert sent + sum(int(ln.message.split()[0]) for ln in dropped) >= 3000 - 1, "every refused record is counted"
    w.send(Drain(keep_session=False, timeout=5))
    w.wait_exit()
    pub.close()


def test_rate_gate_refills_at_its_rate_and_reports_once_a_second():
    now = [0.0]
    gate = RateGate(rate=10, burst=5, clock=lambda: now[0])
    assert sum(gate.take() for _ in range(20)) == 5, "the burst, then nothing"
    assert gate.due_report() == 0, "no report within the first second"
    now[0] = 1.0
    assert gate.due_report() == 15 and gate.due_report() == 0
    now[0] = 1.5
    assert sum(gate.take() for _ in range(20)) == 5, "half a second at 10/s refills 5"


def test_slot_file_rotates_under_its_cap_and_keeps_the_backups(tmp_path):
    path = tmp_path / "r-0.log"
    fd = logfiles.open_private(str(path))
    state = {"fd": fd}

    def on_big():
        os.close(state["fd"])
        rotate(path, backups=2)
        state["fd"] = logfiles.open_private(str(path))
        capture.fd = state["fd"]

    capture = LineCapture("stdout", "INFO", fd, lambda *a: None, limit=100_000, on_big=on_big)
    for i in range(3000):
        capture.write(f"line {i:05d} " + "y" * 90 + "\n")
    os.close(state["fd"])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["r-0.log", "r-0.log.1", "r-0.log.2"], names
    for p in tmp_path.iterdir():
        assert p.stat().st_size < 100_000 + 70_000, f"{p.name} grew past the cap"
    assert "line 02999" in path.read_text(), "the newest lines are in the current file"


def test_fleet_log_rotates_and_is_private(tmp_path):
    log = FleetLog(tmp_path / "fleet.log", limit=2000, backups=2)
    for i in range(200):
        log.write(1_700_000_000.0 + i, "DEBUG", "r/0", f"record {i}")
    log.close()
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == ["fleet.log", "fleet.log.1", "fleet.log.2"]
    assert all(p.stat().st_size <= 2100 for p in files)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert "r/0: record 199" in (tmp_path / "fleet.log").read_text()


PRINTS = '''
def handle(msg):
    print("handled", msg.topic)
'''


def test_fleet_log_and_quit_summary_name_the_log_directory(project, start_fleet):
    project.handler("loud", PRINTS)
    fleet = start_fleet(project.write([{"name": "work", "topic": "jobs/{id}", "handler": "handlers.loud:handle",
                                        "shared": True, "workers": 1, "qos": 1}]))
    wait_for(lambda: any(w.state.value == "subscribed" for w in fleet.snapshot().workers),
             what="a subscribed worker")
    assert publish(fleet, lambda i: "jobs/1", 1) == 1
    wait_for(lambda: any(r.message == "stdout: handled jobs/1" for r in fleet.logs_since(0)),
             what="the print as a record")
    fleet.stop(timeout=10)
    snap = fleet.snapshot()
    log_dir = snap.extra["log_dir"]
    assert log_dir in quit_summary(snap)
    fleet_log = os.path.join(log_dir, "fleet.log")
    text = open(fleet_log).read()
    assert "work/0: stdout: handled jobs/1" in text and "fleet stopped" in text
    assert "handled jobs/1" in open(os.path.join(log_dir, "work-0.log")).read()
