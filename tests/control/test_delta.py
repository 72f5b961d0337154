"""Snapshot streams with only the changed workers: exact on arrival, small on the wire, live over the socket."""

from __future__ import annotations

import dataclasses
import json
import socket

import pytest

from rmqtui.demo import FixedFleet
from rmqtui.engine.control.codec import snapshot_to_dict
from rmqtui.engine.control.delta import DeltaDecoder, DeltaEncoder
from rmqtui.engine.snapshot import WorkerState
from tests.engine.conftest import wait_for


def wire(encoder: DeltaEncoder, snap) -> dict:
    return json.loads(json.dumps(encoder.encode(snap)))


def test_a_delta_stream_rebuilds_every_snapshot_exactly_and_sends_only_what_changed() -> None:
    s1 = FixedFleet("normal").snapshot()
    assert len(s1.workers) >= 4
    first, second, *rest = s1.workers
    # one worker's figures move, time passes; the others are the very same objects
    s2 = dataclasses.replace(s1, time=s1.time + 1, workers=(dataclasses.replace(first, handled=first.handled + 5),
                                                             second, *rest))
    # a worker leaves, one arrives at the end
    newcomer = dataclasses.replace(rest[-1], id=f"{rest[-1].route}/99", slot=99, pid=4242, state=WorkerState.STARTING)
    s3 = dataclasses.replace(s2, time=s2.time + 1, workers=(s2.workers[0], *rest, newcomer))
    # nothing changes at all
    s4 = dataclasses.replace(s3, time=s3.time + 1)
    encoder, decoder = DeltaEncoder(), DeltaDecoder()
    sent, sizes = [], []
    for snap in (s1, s2, s3, s4):
        data = wire(encoder, snap)
        sizes.append(len(json.dumps(data["workers"])))
        sent.append(data)
        decoder.apply(json.loads(json.dumps(data)))
        assert decoder.snapshot() == snap, "the stream rebuilt another snapshot"
    assert sent[0]["delta"] is False and len(sent[0]["workers"]) == len(s1.workers) and "worker_fields" in sent[0]
    assert sent[1]["delta"] is True and len(sent[1]["workers"]) == 1 and "ids" not in sent[1], \
        "only the changed worker, and no id list while the set of workers is the same"
    assert len(sent[2]["workers"]) == 1 and sent[2]["ids"] == [w.id for w in s3.workers]
    assert sent[3]["workers"] == [] and "ids" not in sent[3]
    assert sizes[1] < sizes[0] / 3, sizes


def test_the_client_keeps_the_objects_of_workers_that_did_not_change() -> None:
    s1 = FixedFleet("normal").snapshot()
    changed = dataclasses.replace(s1.workers[0], handled=s1.workers[0].handled + 1)
    s2 = dataclasses.replace(s1, workers=(changed, *s1.workers[1:]))
    encoder, decoder = DeltaEncoder(), DeltaDecoder()
    decoder.apply(wire(encoder, s1))
    before = decoder.snapshot()
    decoder.apply(wire(encoder, s2))
    after = decoder.snapshot()
    assert after.workers[0] is not before.workers[0] and after.workers[0] == changed
    assert all(a is b for a, b in zip(after.workers[1:], before.workers[1:])), \
        "an unchanged worker was decoded again (the TUI would diff its row again)"


def test_a_client_that_skipped_snapshots_still_rebuilds_the_newest() -> None:
    """A slow client gets only the newest snapshot: the delta is against what it was sent, not the one it missed."""
    s1 = FixedFleet("normal").snapshot()
    w = s1.workers
    s2 = dataclasses.replace(s1, workers=(dataclasses.replace(w[0], failed=7), *w[1:]))
    s3 = dataclasses.replace(s2, workers=(s2.workers[0], dataclasses.replace(w[1], state=WorkerState.HUNG), *w[2:]))
    encoder, decoder = DeltaEncoder(), DeltaDecoder()
    decoder.apply(wire(encoder, s1))
    data = wire(encoder, s3)  # s2 was never written to this client
    assert len(data["workers"]) == 2
    decoder.apply(data)
    assert decoder.snapshot() == s3


def test_full_snapshots_of_a_server_without_deltas_and_an_older_releases_uptime_are_read() -> None:
    snap = FixedFleet("crashloop").snapshot()
    decoder = DeltaDecoder()
    decoder.apply(json.loads(json.dumps(snapshot_to_dict(snap, rows=True))))
    assert decoder.snapshot() == snap
    old = json.loads(json.dumps(snapshot_to_dict(snap)))  # workers as objects, as a release before rows sent
    running = [w for w in snap.workers if w.started is not None]
    for w in old["workers"]:
        started = w.pop("started")
        if started is not None:
            w["uptime"] = snap.time - started
    decoder.apply(old)
    got = {w.id: w for w in decoder.snapshot().workers}
    assert running and all(got[w.id].started == pytest.approx(w.started) for w in running)


def test_a_delta_before_any_full_snapshot_is_refused() -> None:
    snap = FixedFleet("normal").snapshot()
    encoder = DeltaEncoder()
    encoder.encode(snap)
    with pytest.raises(ValueError):
        DeltaDecoder().apply(wire(encoder, snap))


def test_over_the_socket_an_idle_fleet_sends_no_worker_rows_and_a_command_only_its_changes(served) -> None:
    fleet = FixedFleet("normal")
    server = served.serve(fleet)
    n, route = len(fleet.snapshot().workers), fleet.snapshot().routes[0].name
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(server.socket_paths["operator"]))
        stream = sock.makefile("rb")
        sock.sendall(b'{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"streams":["snapshot"],'
                     b'"interval":0.1,"rows":true,"delta":true}}\n')
        snapshots = []
        while len(snapshots) < 4:
            message = json.loads(stream.readline())
            if message.get("method") == "snapshot":
                snapshots.append(message["params"]["snapshot"])
        assert snapshots[0]["delta"] is False and len(snapshots[0]["workers"]) == n
        assert all(s["delta"] is True and s["workers"] == [] for s in snapshots[1:]), \
            [len(s["workers"]) for s in snapshots]
        sock.sendall(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "add", "params": {"route": route}}).encode()
                     + b"\n")
        before_reply = None
        while True:
            message = json.loads(stream.readline())
            if message.get("id") == 2:
                break
            if message.get("method") == "snapshot":
                before_reply = message["params"]["snapshot"]
        assert message["result"]["ok"], message
        assert before_reply is not None and before_reply["delta"] is True
        assert len(before_reply["ids"]) == n + 1 and 1 <= len(before_reply["workers"]) < n, \
            "the added worker (and any it changed), not the whole fleet"


def test_a_remote_fleet_over_deltas_shows_what_the_fleet_shows(served) -> None:
    fleet = FixedFleet("normal")
    server = served.serve(fleet)
    remote = served.remote(server)
    assert remote.snapshot() == fleet.snapshot()
    route = fleet.snapshot().routes[0].name
    assert remote.add_worker(route).ok
    wait_for(lambda: remote.snapshot() == fleet.snapshot(), what="the added worker in the remote snapshot")
    assert remote.kill_worker(f"{route}/0").ok
    wait_for(lambda: remote.snapshot() == fleet.snapshot(), what="the killed worker in the remote snapshot")


def test_snapshot_lines_a_client_cannot_read_are_skipped_and_the_stream_goes_on(served, monkeypatch) -> None:
    """Garbage, a delta with no full snapshot before it, rows without ids or of the wrong length: no line
    stops the reader; rows it cannot decode make it ask for a full snapshot again, and the stream goes on."""
    fleet = FixedFleet("normal")
    server = served.serve(fleet)
    remote = served.remote(server)
    good = remote.snapshot()
    prefix = b'{"jsonrpc":"2.0","method":"snapshot","params":{"snapshot":'
    data = snapshot_to_dict(good, rows=True)
    no_ids = dict(data, worker_fields=[f for f in data["worker_fields"] if f != "id"])
    short_rows = dict(data, workers=[row[:3] for row in data["workers"]])
    calls = []
    original = remote._subscribe
    monkeypatch.setattr(remote, "_subscribe", lambda interval: (calls.append(interval), original(interval)))
    for bad in (b"\x1b[2Jnot json", prefix + b'"x"}}', prefix + json.dumps({"delta": True, "workers": [[1]]}).encode()
                + b"}}", prefix + json.dumps(no_ids).encode() + b"}}", prefix + json.dumps(short_rows).encode() + b"}}"):
        remote._snapshot_line(bad + b"\n")  # never raises
    assert remote.snapshot() == good, "the rows it could not decode: the last good snapshot meanwhile"
    assert calls, "a stream it cannot decode is started again from a full snapshot"
    assert remote.add_worker(good.routes[0].name).ok
    wait_for(lambda: remote.snapshot() == fleet.snapshot(), what="the stream to carry on after the bad lines")
