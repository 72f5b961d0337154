"""A fleet with fixed, deterministic data, for snapshot tests, screenshots and demos.

:class:`FixedFleet` implements :class:`~rmqtui.engine.api.FleetControl` without
processes, sockets or a clock: time stands still at :data:`FIXED_TIME`, and
every command changes the fixed state in the same way each run, so a test can
press a key and assert on what the table shows.

``python -m rmqtui.demo [normal|crashloop|debug]`` runs the TUI on it.
"""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass, replace

from rmqtui.engine.api import CommandResult
from rmqtui.engine.snapshot import (
    BrokerSnapshot,
    BrokerState,
    FleetSnapshot,
    LogRecord,
    RouteSnapshot,
    WorkerSnapshot,
    WorkerState,
)

FIXED_TIME = 1_800_000_000.0
"""The instant every snapshot of a :class:`FixedFleet` is taken at."""

SCENARIOS = ("normal", "crashloop", "debug")
"""Names accepted by :class:`FixedFleet`."""

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_HISTORY = 5000
_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Route:
    name: str
    topic: str
    filter_: str
    shared: bool
    qos: int
    base_rate: float


_ROUTES = (
    _Route("sensor-data", "sensors/{device_id}/data", "sensors/+/data", True, 1, 412.0),
    _Route("telemetry", "telemetry/{site}/{metric}", "telemetry/+/+", True, 0, 236.5),
    _Route("alerts", "alerts/{severity}", "alerts/+", False, 2, 3.2),
)


def _history(seed: int, base: float) -> tuple[float, ...]:
    """Sixty fixed msg/s samples that look like traffic."""
    return tuple(
        round(max(0.0, base * (0.75 + 0.25 * math.sin((i + seed * 7) / 5.0) + 0.1 * math.cos(i * 1.7 + seed))), 1)
        for i in range(60)
    )


class FixedFleet:
    """A :class:`~rmqtui.engine.api.FleetControl` with fixed data and deterministic commands.

    Every command is recorded in :attr:`calls` as ``(name, *args)``.  ``stop``
    marks the workers draining and, when ``stop_gate`` is given, waits for it
    to be set before it marks them stopped, so a test can watch the drain.
    """

    def __init__(self, scenario: str = "normal", *, stop_gate: threading.Event | None = None) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.calls: list[tuple] = []
        self._stop_gate = stop_gate
        self._lock = threading.Lock()
        self._log: list[LogRecord] = []
        self._seq = 0
        self._next_pid = 48_310
        self._stopping = False
        self._stopped = False
        self._level = "DEBUG" if scenario == "debug" else "INFO"
        self._desired = {"sensor-data": 3, "telemetry": 2, "alerts": 1}
        self._workers: dict[str, WorkerSnapshot] = {}
        self._build_workers()
        self._build_log()

    # -- fixed data ---------------------------------------------------------------------------

    def _worker(self, route: str, slot: int, state: WorkerState, **kw) -> WorkerSnapshot:
        handled = kw.pop("handled", 0)
        worker = WorkerSnapshot(
            id=f"{route}/{slot}",
            route=route,
            slot=slot,
            client_id=f"rmq-demo-host-{route}-{slot}",
            pid=kw.pop("pid", 48_200 + 10 * len(self._workers) + slot),
            state=state,
            received=handled + kw.get("failed", 0) + kw.get("in_flight", 0),
            handled=handled,
            log_level=self._level,
            **kw,
        )
        self._workers[worker.id] = worker
        return worker

    def _build_workers(self) -> None:
        live = dict(cpu_percent=None, rss=None, fds=None, threads=None)
        self._worker("sensor-data", 0, WorkerState.SUBSCRIBED, handled=1_482_113, failed=12, rate=139.4,
                     handler_seconds=2_160.5, in_flight=2, cpu_percent=23.5, rss=48 * _MB, uss=41 * _MB,
                     fds=14, threads=4, uptime=3_723.0)
        self._worker("sensor-data", 1, WorkerState.SUBSCRIBED, handled=1_479_870, failed=9, rate=138.1,
                     handler_seconds=2_141.0, in_flight=1, cpu_percent=22.9, rss=47 * _MB, uss=40 * _MB,
                     fds=14, threads=4, uptime=3_722.6)
        self._worker("sensor-data", 2, WorkerState.SUBSCRIBED, handled=1_201_004, failed=7, rate=134.5,
                     handler_seconds=1_733.2, in_flight=0, cpu_percent=21.8, rss=46 * _MB, uss=39 * _MB,
                     fds=13, threads=4, uptime=1_105.0, restarts=1, last_exit=-9)
        if self.scenario != "crashloop":
            self._worker("sensor-data", 3, WorkerState.DRAINING, pid=48_377, handled=20_511, failed=0, rate=0.0,
                         reason="scaled down, 1 in flight", in_flight=1, cpu_percent=3.1, rss=44 * _MB,
                         fds=13, threads=4, uptime=151.0)
        self._worker("telemetry", 0, WorkerState.SUBSCRIBED, handled=880_245, failed=0, rate=236.5,
                     handler_seconds=410.9, cpu_percent=31.2, rss=52 * _MB, uss=45 * _MB, fds=15, threads=5,
                     uptime=3_723.0)
        if self.scenario == "crashloop":
            self._worker("telemetry", 1, WorkerState.CRASHLOOP, pid=None, handled=3_118, failed=5,
                         reason="5 crashes in 60s, last exit 1: KeyError: 'site'", restarts=5, last_exit=1,
                         **live)
        else:
            self._worker("telemetry", 1, WorkerState.STARTING, pid=48_391, handled=0, reason="",
                         restarts=0, **live)
        self._worker("alerts", 0, WorkerState.SUBSCRIBED, handled=11_532, failed=3, rate=3.2,
                     handler_seconds=95.1, cpu_percent=0.7, rss=39 * _MB, uss=33 * _MB, fds=12, threads=3,
                     uptime=3_721.9)

    def _build_log(self) -> None:
        t = FIXED_TIME - 60.0
        self._add_log("INFO", "broker", "embedded mosquitto listening on 127.0.0.1:18830 (pid 48190)", t)
        self._add_log("INFO", "fleet", "loaded routemq.toml: 3 routes, 6 workers, group 'workers'", t + 0.2)
        for w in self._workers.values():
            if w.state is WorkerState.SUBSCRIBED:
                self._add_log("INFO", w.id, f"subscribed to $share/workers/{_route(w.route).filter_}"
                              if _route(w.route).shared else f"subscribed to {_route(w.route).filter_}", t + 1)
        self._add_log("WARNING", "sensor-data/0", "device 'th-0042' sent a reading without 'temp'; skipped", t + 9)
        self._add_log("INFO", "fleet", "sensor-data/2 exited with signal 9; restarting in 1s", t + 14)
        self._add_log("INFO", "sensor-data/2", "subscribed to $share/workers/sensors/+/data", t + 15.3)
        if self.scenario == "crashloop":
            for i in range(3):
                self._add_log("ERROR", "telemetry/1", "handler raised KeyError: 'site' (topic telemetry//cpu)",
                              t + 20 + i * 6)
            self._add_log("ERROR", "fleet", "telemetry/1 is crash-looping (5 crashes in 60s, last exit 1); "
                          "not restarting until you press r", t + 40)
        else:
            self._add_log("INFO", "fleet", "starting telemetry/1 (pid 48391)", t + 58)
        if self.scenario == "debug":
            self._add_log("INFO", "fleet", "log level of the fleet set to DEBUG", t + 30)
            self._add_log("DEBUG", "sensor-data/1", "sensors/th-0017/data -> process_data 1.4 ms", t + 31)
            self._add_log("DEBUG", "telemetry/0", "telemetry/lyon/cpu -> record 0.5 ms", t + 31.5)
            self._add_log("DEBUG", "alerts/0", "alerts/critical -> notify 12.8 ms", t + 32)

    def _add_log(self, level: str, source: str, message: str, time: float = FIXED_TIME) -> None:
        self._seq += 1
        self._log.append(LogRecord(self._seq, time, level, source, message))
        del self._log[:-_LOG_HISTORY]

    # -- FleetControl -------------------------------------------------------------------------

    def start(self) -> None:
        """Nothing to start; present so the CLI can treat this like the real fleet."""
        self.calls.append(("start",))

    def snapshot(self) -> FleetSnapshot:
        """The fixed fleet as it stands after the commands so far."""
        with self._lock:
            workers = tuple(sorted(self._workers.values(), key=lambda w: (_ROUTE_ORDER[w.route], w.slot)))
            routes = []
            for i, r in enumerate(_ROUTES):
                mine = [w for w in workers if w.route == r.name]
                rate = round(sum(w.rate for w in mine), 1)
                routes.append(RouteSnapshot(
                    name=r.name, topic=r.topic,
                    filter=f"$share/workers/{r.filter_}" if r.shared else r.filter_,
                    shared=r.shared, qos=r.qos, desired=self._desired[r.name],
                    running=sum(1 for w in mine if w.pid is not None),
                    received=sum(w.received for w in mine), handled=sum(w.handled for w in mine),
                    failed=sum(w.failed for w in mine), rate=rate, history=_history(i, r.base_rate)[:-1] + (rate,),
                ))
            return FleetSnapshot(
                time=FIXED_TIME, started=FIXED_TIME - 3_725.0, group="workers",
                config_path="routemq.toml",
                broker=BrokerSnapshot("127.0.0.1", 18830, True,
                                      BrokerState.STOPPED if self._stopped else BrokerState.UP, pid=48_190),
                routes=tuple(routes), workers=workers, log_level=self._level, stopping=self._stopping,
                supervisor_pid=48_188, supervisor_cpu=1.2, supervisor_rss=61 * _MB, hostname="demo-host",
            )

    def logs_since(self, seq: int) -> list[LogRecord]:
        """Records after ``seq``, oldest first."""
        with self._lock:
            return [r for r in self._log if r.seq > seq]

    def add_worker(self, route: str) -> CommandResult:
        """Add a worker in state starting (refused on the non-shared route)."""
        with self._lock:
            self.calls.append(("add_worker", route))
            r = _route(route)
            if r is None:
                return CommandResult.refused(f"no route named {route!r}")
            if not r.shared:
                return CommandResult.refused(
                    f"{route} is not shared: a second worker would receive every message twice "
                    f"(set shared = true for it in routemq.toml)")
            slot = self._free_slot(route)
            self._desired[route] += 1
            w = self._worker(route, slot, WorkerState.STARTING, pid=self._new_pid())
            self._add_log("INFO", "fleet", f"starting {w.id} (pid {w.pid})")
            return CommandResult.accepted(f"{route}: {self._desired[route]} workers wanted, starting {w.id}")

    def remove_worker(self, route: str, worker: str | None = None) -> CommandResult:
        """Drain ``worker`` (or the highest live slot) and lower the desired count."""
        with self._lock:
            self.calls.append(("remove_worker", route, worker))
            if _route(route) is None:
                return CommandResult.refused(f"no route named {route!r}")
            live = [w for w in self._workers.values() if w.route == route and w.state is not WorkerState.DRAINING]
            if worker is not None:
                live = [w for w in live if w.id == worker]
                if not live:
                    return CommandResult.refused(f"{worker} is not a running worker of {route}")
            if not live or self._desired[route] == 0:
                return CommandResult.refused(f"{route} has no worker left to remove")
            victim = max(live, key=lambda w: w.slot)
            self._desired[route] -= 1
            self._workers[victim.id] = replace(victim, state=WorkerState.DRAINING, reason="removed by operator",
                                               rate=0.0)
            self._add_log("INFO", "fleet", f"draining {victim.id}")
            return CommandResult.accepted(f"{route}: {self._desired[route]} workers wanted, draining {victim.id}")

    def scale(self, route: str, count: int) -> CommandResult:
        """Set the desired count by adding or removing workers one at a time."""
        self.calls.append(("scale", route, count))
        if _route(route) is None:
            return CommandResult.refused(f"no route named {route!r}")
        if count < 0:
            return CommandResult.refused("a route cannot have fewer than 0 workers")
        while self._desired[route] < count:
            result = self.add_worker(route)
            if not result.ok:
                return result
        while self._desired[route] > count:
            self.remove_worker(route)
        return CommandResult.accepted(f"{route}: {count} workers wanted")

    def restart_worker(self, worker: str) -> CommandResult:
        """Start the slot anew: new pid, state starting, one more restart."""
        with self._lock:
            self.calls.append(("restart_worker", worker))
            w = self._workers.get(worker)
            if w is None:
                return CommandResult.refused(f"no worker {worker!r}")
            self._workers[worker] = replace(
                w, pid=self._new_pid(), state=WorkerState.STARTING, reason="restarted by operator",
                restarts=w.restarts + 1, uptime=0.0, rate=0.0, cpu_percent=None, rss=None, uss=None,
                fds=None, threads=None, last_exit=0 if w.pid is not None else w.last_exit)
            self._add_log("INFO", "fleet", f"restarting {worker}")
            return CommandResult.accepted(f"restarting {worker}")

    def kill_worker(self, worker: str) -> CommandResult:
        """Mark the worker crashed by SIGKILL (refused when it has no process)."""
        with self._lock:
            self.calls.append(("kill_worker", worker))
            w = self._workers.get(worker)
            if w is None:
                return CommandResult.refused(f"no worker {worker!r}")
            if w.pid is None:
                return CommandResult.refused(f"{worker} has no process to kill")
            self._workers[worker] = replace(
                w, pid=None, state=WorkerState.CRASHED, reason="killed by SIGKILL (exit -9)", last_exit=-9,
                rate=0.0, cpu_percent=None, rss=None, uss=None, fds=None, threads=None, uptime=None)
            self._add_log("WARNING", "fleet", f"{worker} (pid {w.pid}) killed with SIGKILL")
            return CommandResult.accepted(f"sent SIGKILL to {worker} (pid {w.pid})")

    def set_log_level(self, level: str, worker: str | None = None) -> CommandResult:
        """Set the level of one worker, or of the fleet and every worker."""
        with self._lock:
            self.calls.append(("set_log_level", level, worker))
            level = level.upper()
            if level not in LEVELS:
                return CommandResult.refused(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
            if worker is None:
                self._level = level
                for wid, w in self._workers.items():
                    self._workers[wid] = replace(w, log_level=level)
                self._add_log("INFO", "fleet", f"log level of the fleet set to {level}")
                return CommandResult.accepted(f"fleet log level set to {level}")
            w = self._workers.get(worker)
            if w is None:
                return CommandResult.refused(f"no worker {worker!r}")
            self._workers[worker] = replace(w, log_level=level)
            self._add_log("INFO", "fleet", f"log level of {worker} set to {level}")
            return CommandResult.accepted(f"{worker} log level set to {level}")

    def save_config(self) -> CommandResult:
        """Pretend to write the desired counts (nothing touches the disk)."""
        with self._lock:
            self.calls.append(("save_config",))
            counts = ", ".join(f"{name}={n}" for name, n in self._desired.items())
            self._add_log("INFO", "fleet", f"wrote routemq.toml ({counts})")
            return CommandResult.accepted(f"wrote routemq.toml ({counts})")

    def reload_config(self) -> CommandResult:
        """Pretend to re-read the config: nothing changed on disk, so nothing changes live."""
        with self._lock:
            self.calls.append(("reload_config",))
            self._add_log("INFO", "fleet", "reloaded: no live change")
            return CommandResult.accepted("reloaded: no live change")

    def stop(self, timeout: float = 10.0) -> None:
        """Mark every live worker draining, wait for ``stop_gate`` if any, then stop them all."""
        with self._lock:
            self.calls.append(("stop", timeout))
            self._stopping = True
            for wid, w in self._workers.items():
                if w.pid is not None:
                    self._workers[wid] = replace(w, state=WorkerState.DRAINING, reason="fleet stopping", rate=0.0)
            self._add_log("INFO", "fleet", "stopping: draining every worker")
        if self._stop_gate is not None:
            self._stop_gate.wait(timeout)
        with self._lock:
            for wid, w in self._workers.items():
                self._workers[wid] = replace(w, state=WorkerState.STOPPED, pid=None, reason="")
            self._stopped = True
            self._add_log("INFO", "fleet", "stopped")

    # -- helpers ------------------------------------------------------------------------------

    def _free_slot(self, route: str) -> int:
        used = {w.slot for w in self._workers.values() if w.route == route}
        return next(i for i in range(len(used) + 1) if i not in used)

    def _new_pid(self) -> int:
        self._next_pid += 1
        return self._next_pid


_ROUTE_ORDER = {r.name: i for i, r in enumerate(_ROUTES)}


def _route(name: str) -> _Route | None:
    return next((r for r in _ROUTES if r.name == name), None)


def main(argv: list[str] | None = None) -> int:
    """Run the TUI on a :class:`FixedFleet` (``python -m rmqtui.demo [scenario]``)."""
    from rmqtui.ui.app import run_tui

    args = sys.argv[1:] if argv is None else argv
    scenario = args[0] if args else "normal"
    if scenario not in SCENARIOS:
        print(f"usage: python -m rmqtui.demo [{'|'.join(SCENARIOS)}]", file=sys.stderr)
        return 2
    fleet = FixedFleet(scenario)
    try:
        return run_tui(fleet)
    finally:
        fleet.stop(timeout=0.0)


if __name__ == "__main__":
    sys.exit(main())
