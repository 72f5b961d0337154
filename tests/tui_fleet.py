"""A scripted FleetControl for the TUI's own tests: a FleetSnapshot the test sets, commands it records.

It implements only the FleetControl protocol and builds only FleetSnapshots, so the TUI tests
do not depend on how the demo fleet or the engine choose their figures.  Time is explicit:
``snapshot_at(t)`` gives the fleet ``t`` seconds after :data:`BASE`, with figures that vary
with ``t``, so history charts are deterministic.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace

from rmqtui.engine.api import CommandResult
from rmqtui.engine.snapshot import (
    BrokerSnapshot,
    BrokerState,
    ExitRecord,
    FleetSnapshot,
    LogRecord,
    RouteSnapshot,
    WorkerSnapshot,
    WorkerState,
)

BASE = 1_800_000_000.0
MB = 1024 * 1024
LONG_REASON = ("connection lost: [Errno 111] Connection refused by 127.0.0.1:18830 while resubscribing "
               "to $share/workers/orders/+/created; retrying in 4 s (attempt 3)")


def _worker(route: str, slot: int, state: WorkerState, **kw) -> WorkerSnapshot:
    return WorkerSnapshot(id=f"{route}/{slot}", route=route, slot=slot, client_id=f"rmq-host-{route}-{slot}",
                          pid=kw.pop("pid", 41_000 + 10 * slot + len(route)), state=state, **kw)


def workers_at(t: float) -> list[WorkerSnapshot]:
    """Five workers whose rate, CPU and USS move with ``t`` (seconds)."""
    wave = lambda period, phase=0.0: 0.5 + 0.5 * math.sin(t / period + phase)  # noqa: E731
    return [
        _worker("orders", 0, WorkerState.SUBSCRIBED, received=90_412, handled=90_400, failed=9, dead_lettered=3,
                rate=round(80 + 60 * wave(40), 1), handler_seconds=180.8, in_flight=3,
                cpu_percent=round(10 + 25 * wave(30, 1), 1), rss=31 * MB, uss=int((6.5 + 3 * wave(90)) * MB),
                fds=14, threads=4, restarts=2, started=BASE - 3_600.0, last_exit=-9,
                exits=(ExitRecord(BASE - 5_400, 1, "crashed", "KeyError: 'id'"),
                       ExitRecord(BASE - 3_600, -9, "killed from outside"))),
        _worker("orders", 1, WorkerState.SUBSCRIBED, received=45_100, handled=45_100, rate=round(30 + 10 * wave(20), 1),
                handler_seconds=60.2, cpu_percent=round(4 + 3 * wave(25), 1), rss=29 * MB, uss=7 * MB, fds=13,
                threads=4, started=BASE - 600.0),
        _worker("orders", 2, WorkerState.DISCONNECTED, received=1_200, handled=1_190, failed=10,
                reason=LONG_REASON, cpu_percent=0.0, rss=28 * MB, uss=6 * MB, fds=12, threads=4, restarts=1,
                started=BASE - 120.0, last_exit=1),
        _worker("audit", 0, WorkerState.SUBSCRIBED, received=7_777, handled=7_770, failed=7, rate=2.5,
                handler_seconds=15.5, in_flight=1, cpu_percent=1.5, rss=30 * MB, uss=9 * MB, fds=12, threads=3,
                started=BASE - 3_600.0),
        _worker("audit", 1, WorkerState.DRAINING, received=500, handled=499, in_flight=1, reason="scaled down",
                cpu_percent=0.3, rss=27 * MB, uss=5 * MB, fds=11, threads=3, started=BASE - 30.0),
    ]


class ScriptedFleet:
    """FleetControl over a snapshot a test controls; every command is recorded in :attr:`calls`."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.t = 0.0
        self.desired = {"orders": 3, "audit": 2}
        self.level = "INFO"
        self.workers = workers_at(0.0)
        self.logs: list[LogRecord] = []
        self.stop_gate: threading.Event | None = None
        self.forced = False
        for i, w in enumerate(self.workers):
            self.log("INFO", w.id, f"subscribed to $share/workers/{w.route}/+", BASE - 30 + i)
        self.log("WARNING", "orders/2", "broker connection lost; retrying", BASE - 5)

    # -- test controls ----------------------------------------------------------------------------

    def log(self, level: str, source: str, message: str, when: float | None = None) -> LogRecord:
        """Append one record (as the engine would) and return it."""
        record = LogRecord(len(self.logs) + 1, BASE + self.t if when is None else when, level, source, message)
        self.logs.append(record)
        return record

    def advance(self, seconds: float) -> None:
        """Move the fleet's clock; figures follow :func:`workers_at`, keeping command changes to states."""
        self.t += seconds
        fresh = {w.id: w for w in workers_at(self.t)}
        self.workers = [replace(fresh[w.id], state=w.state, pid=w.pid, log_level=w.log_level, reason=w.reason)
                        if w.id in fresh else w for w in self.workers]

    def snapshot_at(self, t: float) -> FleetSnapshot:
        """The fleet at ``t`` seconds (the commands' changes kept)."""
        self.t = t - 1.0
        self.advance(1.0)
        return self.snapshot()

    # -- FleetControl ------------------------------------------------------------------------------

    def snapshot(self) -> FleetSnapshot:
        routes = []
        for name, topic in (("orders", "orders/{id}/created"), ("audit", "audit/{rest...}")):
            mine = [w for w in self.workers if w.route == name]
            routes.append(RouteSnapshot(
                name=name, topic=topic, filter=f"$share/workers/{name}/+", shared=True, qos=1,
                desired=self.desired[name], running=sum(1 for w in mine if w.pid is not None),
                received=sum(w.received for w in mine), handled=sum(w.handled for w in mine),
                failed=sum(w.failed for w in mine), rate=round(sum(w.rate for w in mine), 1),
                history=tuple(float(10 + (i * 7) % 30) for i in range(60))))
        return FleetSnapshot(time=BASE + self.t, started=BASE - 3_600.0, group="workers",
                             config_path="/srv/app/routemq.toml",
                             broker=BrokerSnapshot("127.0.0.1", 18830, True, BrokerState.UP, pid=40_999),
                             routes=tuple(routes), workers=tuple(self.workers), log_level=self.level,
                             hostname="test-host", extra={"log_dir": "/srv/state/logs"})

    def logs_since(self, seq: int) -> list[LogRecord]:
        return [r for r in self.logs if r.seq > seq]

    def _set(self, worker: str, **changes) -> WorkerSnapshot | None:
        for i, w in enumerate(self.workers):
            if w.id == worker:
                self.workers[i] = replace(w, **changes)
                return self.workers[i]
        return None

    def add_worker(self, route: str) -> CommandResult:
        self.calls.append(("add_worker", route))
        return self.scale(route, self.desired[route] + 1, record=False)

    def remove_worker(self, route: str, worker: str | None = None) -> CommandResult:
        self.calls.append(("remove_worker", route, worker))
        return self.scale(route, max(0, self.desired[route] - 1), record=False)

    def scale(self, route: str, count: int, record: bool = True) -> CommandResult:
        if record:
            self.calls.append(("scale", route, count))
        if route not in self.desired:
            return CommandResult.refused(f"no route named {route!r}")
        self.desired[route] = count
        return CommandResult.accepted(f"{route}: {count} workers wanted")

    def restart_worker(self, worker: str) -> CommandResult:
        self.calls.append(("restart_worker", worker))
        w = self._set(worker, state=WorkerState.STARTING, reason="restarted by operator")
        return CommandResult.accepted(f"restarting {worker}") if w else CommandResult.refused(f"no worker {worker!r}")

    def kill_worker(self, worker: str) -> CommandResult:
        self.calls.append(("kill_worker", worker))
        w = self._set(worker, state=WorkerState.CRASHED, pid=None, reason="killed by SIGKILL (exit -9)")
        return CommandResult.accepted(f"killed {worker}") if w else CommandResult.refused(f"no worker {worker!r}")

    def set_log_level(self, level: str, worker: str | None = None) -> CommandResult:
        self.calls.append(("set_log_level", level, worker))
        if worker is None:
            self.level = level
            self.workers = [replace(w, log_level=level) for w in self.workers]
            return CommandResult.accepted(f"fleet log level set to {level}")
        self._set(worker, log_level=level)
        return CommandResult.accepted(f"{worker} log level set to {level}")

    def save_config(self) -> CommandResult:
        self.calls.append(("save_config",))
        return CommandResult.accepted("wrote routemq.toml")

    def reload_config(self) -> CommandResult:
        self.calls.append(("reload_config",))
        self.desired = {"orders": 3, "audit": 2}
        return CommandResult.accepted("reloaded routemq.toml")

    def stop(self, timeout: float = 10.0) -> None:
        self.calls.append(("stop", timeout))
        if self.stop_gate is not None:
            self.stop_gate.wait(timeout)

    def force(self) -> None:
        self.calls.append(("force",))
        self.forced = True
        if self.stop_gate is not None:
            self.stop_gate.set()
