"""The control socket with a fixed-data fleet: protocol, roles, audit, modes, slow clients, stale sockets."""

from __future__ import annotations

import json
import os
import socket
import threading
import stat
import time

import pytest

from rmqtui.demo import FixedFleet
from rmqtui.engine import runtime
from rmqtui.engine.control import AlreadyRunning, ControlServer, FleetGone, RemoteFleet, connect, paths
from rmqtui.engine.control.codec import snapshot_from_dict, snapshot_to_dict
from rmqtui.engine.control.session import LOG_QUEUE
from tests.engine.conftest import wait_for


def raw(path, *lines: str, count: int | None = None) -> list[dict]:
    """Send raw protocol lines (as socat would) and read ``count`` answers (default: one per line)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall("".join(line + "\n" for line in lines).encode())
        answers, buf = [], b""
        while len(answers) < (count if count is not None else len(lines)):
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection early"
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                answers.append(json.loads(line))
        return answers


@pytest.mark.parametrize("rows", [False, True])
@pytest.mark.parametrize("scenario", ["normal", "crashloop", "debug"])
def test_snapshots_survive_json_both_ways_exactly(scenario, rows) -> None:
    snap = FixedFleet(scenario).snapshot()
    wire = json.dumps(snapshot_to_dict(snap, rows=rows))
    back = snapshot_from_dict(json.loads(wire))
    assert back == snap, "a snapshot changed on its way through JSON"
    if rows:
        as_rows, as_objects = (json.dumps(snapshot_to_dict(snap, rows=r)["workers"]) for r in (True, False))
        assert len(as_rows) < len(as_objects) * 0.6, "rows are the smaller form"
    assert back.workers[0].state is snap.workers[0].state, "the worker state is not an enum again"
    assert back.routes[0].history == snap.routes[0].history, "the history sparkline changed"


def test_worker_rows_from_another_release_are_read_by_name() -> None:
    """A newer server may send fields this client does not know, in another order: they are matched by
    name (unknown ones ignored, missing ones defaulted), and a row that does not fit its names is an error."""
    snap = FixedFleet("normal").snapshot()
    data = snapshot_to_dict(snap, rows=True)
    fields = data["worker_fields"]
    order = list(reversed(range(len(fields))))
    data["worker_fields"] = [fields[i] for i in order] + ["from_the_future"]
    data["workers"] = [[row[i] for i in order] + [42] for row in data["workers"]]
    assert snapshot_from_dict(json.loads(json.dumps(data))) == snap
    data = snapshot_to_dict(snap, rows=True)
    data["workers"][0] = data["workers"][0][:-1]
    with pytest.raises(ValueError):
        snapshot_from_dict(data)


def test_hello_snapshot_and_errors_speak_json_rpc(served) -> None:
    server = served.serve(FixedFleet("normal"))
    path = server.socket_paths["operator"]
    hello, snap, unknown, garbage, bad = raw(
        path, '{"jsonrpc":"2.0","id":1,"method":"hello"}', '{"jsonrpc":"2.0","id":2,"method":"snapshot"}',
        '{"jsonrpc":"2.0","id":3,"method":"explode"}', 'not json',
        '{"jsonrpc":"2.0","id":5,"method":"scale","params":{"route":"sensor-data","count":"five"}}')
    assert hello["result"]["role"] == "operator" and hello["result"]["protocol"] == 1, str(hello)
    assert hello["result"]["fleet"]["pid"] == os.getpid(), str(hello)
    assert "scale" in hello["result"]["capabilities"], str(hello)
    assert [w["id"] for w in snap["result"]["snapshot"]["workers"]][:2] == ["sensor-data/0", "sensor-data/1"]
    assert unknown["error"]["code"] == -32601, str(unknown)
    assert garbage["error"]["code"] == -32700, str(garbage)
    assert bad["error"]["code"] == -32602 and "count" in bad["error"]["message"], str(bad)


def test_read_only_callers_change_nothing_and_every_change_is_audited(served) -> None:
    fleet = FixedFleet("normal")
    server = served.serve(fleet)
    operator = served.remote(server)
    viewer = served.remote(server, read_only=True)
    assert viewer.read_only and not operator.read_only, "roles come from the socket"
    hello = viewer.info
    assert "scale" not in hello["capabilities"] and "snapshot" in hello["capabilities"], str(hello)
    for call in (lambda f: f.add_worker("sensor-data"), lambda f: f.remove_worker("sensor-data"),
                 lambda f: f.scale("sensor-data", 9), lambda f: f.restart_worker("sensor-data/0"),
                 lambda f: f.kill_worker("sensor-data/0"), lambda f: f.set_log_level("DEBUG"),
                 lambda f: f.save_config(), lambda f: f.reload_config()):
        result = call(viewer)
        assert not result.ok and "read-only" in result.message, result.message
    with pytest.raises(Exception, match="read-only"):
        viewer.stop(1)
    assert fleet.calls == [], f"a read-only caller reached the fleet: {fleet.calls}"
    assert operator.scale("sensor-data", 2).ok, "the operator was refused"
    assert operator.kill_worker("sensor-data/0").ok, "the operator was refused"
    assert fleet.calls[0][0] == "scale" and fleet.calls[-1][0] == "kill_worker", str(fleet.calls)
    lines = [json.loads(line) for line in
             (runtime.fleet_state_dir(server.config_path) / "audit.log").read_text().splitlines()]
    changes = [line for line in lines if line["result"]["ok"]]
    assert [(c["method"], c["params"]) for c in changes] == [
        ("scale", {"route": "sensor-data", "count": 2}), ("kill", {"worker": "sensor-data/0"})], str(changes)
    assert all(c["uid"] == os.geteuid() and c["pid"] == os.getpid() for c in lines), "peer credentials missing"
    assert sum(not line["result"]["ok"] and line["role"] == "read-only" for line in lines) == 9, \
        "every refused attempt of the read-only caller is audited too"


def test_sockets_and_directories_are_private(served) -> None:
    server = served.serve(FixedFleet("normal"))
    for role, path in server.socket_paths.items():
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode), f"{role}: not a socket"
        assert stat.S_IMODE(st.st_mode) == 0o600, f"{role} socket mode {stat.S_IMODE(st.st_mode):o}"
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700, f"{path.parent} is not 0700"
    served.remote(server).scale("sensor-data", 1)
    audit = runtime.fleet_state_dir(server.config_path) / "audit.log"
    assert stat.S_IMODE(os.stat(audit).st_mode) == 0o600, "the audit log is not 0600"
    assert stat.S_IMODE(os.stat(audit.parent).st_mode) == 0o700, "the state directory is not 0700"


def test_a_group_read_only_socket_is_0660_for_that_group(served) -> None:
    server = served.serve(FixedFleet("normal"), group=os.getgid())
    path = server.socket_paths["read-only"]
    st = os.lstat(path)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == os.getgid(), f"{stat.S_IMODE(st.st_mode):o}"
    assert path.parent == runtime.runtime_root(), "a group socket cannot sit in the 0700 fleet directory"
    assert RemoteFleet(server.config_path, read_only=True).read_only, "the group socket is not read-only"


def test_a_second_server_on_a_live_socket_is_refused_and_a_stale_one_replaced(served, dirs) -> None:
    server = served.serve(FixedFleet("normal"))
    second = ControlServer(FixedFleet("normal"), server.config_path, audit_dir=dirs)
    with pytest.raises(AlreadyRunning, match=f"already running \\(pid {os.getpid()}\\); use rmqtui attach"):
        second.start()
    assert served.remote(server).snapshot().workers, "the first server stopped answering"
    # a fleet that was killed leaves socket files nobody answers on
    stale = dirs / "stale" / "routemq.toml"
    dead = paths.socket_path(stale, paths.OPERATOR)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as orphan:
        orphan.bind(str(dead))  # bound, never listening: connecting is refused, like a dead fleet's socket
        replaced = served.serve(FixedFleet("normal"), stale)
        assert paths.probe(replaced.socket_paths["operator"]) is not None, "the stale socket was not replaced"


def test_no_fleet_means_fleet_gone(dirs) -> None:
    with pytest.raises(FleetGone, match="no fleet is running"):
        connect(dirs / "none" / "routemq.toml")
    assert not (runtime.runtime_root() / runtime.config_key(dirs / "none" / "routemq.toml")).exists(), \
        "asking about a config created its runtime directory"


def test_a_slow_client_gets_the_latest_snapshot_and_a_count_of_dropped_records(served) -> None:
    fleet = FixedFleet("normal")
    server = served.serve(fleet)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(str(server.socket_paths["read-only"]))
        sock.sendall(b'{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"interval":0.1}}\n')
        wait_for(lambda: server.sessions and "snapshot" in server.sessions[0].streams, what="the subscription")
        session = server.sessions[0]
        for i in range(3 * LOG_QUEUE):  # far more records than a client that does not read may queue
            fleet.add_log("INFO", "fleet", f"record {i} " + "x" * 200)
        wait_for(lambda: session.dropped_logs > 0, what="records to be dropped")
        for _ in range(20):  # snapshots keep coming; they replace each other
            replies, snapshots, logs, events = session.pending()
            assert snapshots <= 1 and logs <= LOG_QUEUE and replies <= 1, str(session.pending())
            time.sleep(0.05)
        sock.settimeout(10)
        stream = sock.makefile("rb")
        # the count is cumulative, and the pump may have offered the records in more than one go (a tick
        # in the middle of the loop above), so an early batch can carry a partial count: read on to the
        # batch with the newest record (never dropped: the oldest go first), which carries the whole count
        last = f"record {3 * LOG_QUEUE - 1} "
        dropped = None
        while dropped is None:
            message = json.loads(stream.readline())
            if message.get("method") == "log" and any(r["message"].startswith(last)
                                                      for r in message["params"]["records"]):
                dropped = message["params"]["dropped"]
        assert dropped >= LOG_QUEUE, f"only {dropped} records reported dropped"


def test_the_control_plane_imports_no_textual_and_the_engine_part_no_front_end() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['textual'] = None  # any import of textual or textual.* now fails\n"
        "import rmqtui.engine.control\n"
        "front = [m for m in sys.modules if m.split('.')[:2] in (['rmqtui', 'ui'], ['rmqtui', 'cli'],"
        " ['rmqtui', 'headless'], ['rmqtui', 'ctl'], ['rmqtui', 'testing'])]\n"
        "assert not front, front\n"
        "import rmqtui.ctl, rmqtui.sdnotify\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_event_stream_carries_commands_and_state_changes_until_unsubscribed(served) -> None:
    fleet = FixedFleet("normal")
    server = served.serve(fleet)
    events: list[dict] = []
    conn = connect(server.config_path, read_only=True,
                   on_notify=lambda method, params: events.append(params) if method == "event" else None)
    try:
        assert conn.call("subscribe", {"streams": ["event"]})["streams"] == ["event"]
        wait_for(lambda: server._last_states is not None, what="the first state picture")
        operator = served.remote(server)
        assert operator.kill_worker("sensor-data/0").ok, "the operator was refused"
        wait_for(lambda: any(e["kind"] == "command" for e in events), what="the command event")
        command = next(e for e in events if e["kind"] == "command")
        assert (command["method"], command["params"], command["uid"]) == (
            "kill", {"worker": "sensor-data/0"}, os.geteuid()), str(command)
        wait_for(lambda: any(e["kind"] == "state" and e["worker"] == "sensor-data/0" for e in events),
                 what="the state change of the killed worker")
        change = next(e for e in events if e["kind"] == "state" and e["worker"] == "sensor-data/0")
        assert change["from"] == "subscribed" and change["to"] != "subscribed", str(change)
        assert conn.call("unsubscribe", {"streams": ["event"]})["streams"] == [], "still subscribed"
        operator.add_worker("telemetry")
        time_to_arrive = conn.call("snapshot")  # a round trip, then the pump's next ticks
        assert time_to_arrive["snapshot"]["workers"], "no snapshot"
        wait_for(lambda: server._last_states and "telemetry/2" in server._last_states, what="the pump to see it")
        late = [e for e in events if e.get("method") == "add" or e.get("worker") == "telemetry/2"]
        assert not late, f"events after unsubscribing: {late}"
    finally:
        conn.close()


class GatedFleet(FixedFleet):
    """A FixedFleet whose first snapshot() for a request waits until the pump has pushed one."""

    def __init__(self) -> None:
        super().__init__("normal")
        self.pushed = threading.Event()
        self.gated = False

    def snapshot(self):
        name = threading.current_thread().name
        if name == "rmqtui-control-pump":
            self.pushed.set()
        elif name == "rmqtui-control-reader" and not self.gated:
            self.gated = True
            assert self.pushed.wait(10), "the pump never pushed a snapshot"
        return super().snapshot()


def test_a_snapshot_pushed_while_the_client_waits_for_its_own_does_not_deadlock(served) -> None:
    fleet = GatedFleet()
    server = served.serve(fleet)
    made: list = []
    thread = threading.Thread(target=lambda: made.append(served.remote(server, interval=0.1)))
    thread.start()
    thread.join(30)
    assert made and made[0].snapshot().workers, "the RemoteFleet did not come up (a push blocked its reader)"
