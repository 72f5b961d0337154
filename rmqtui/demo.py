"""A fleet with fixed, deterministic data, for snapshot tests, screenshots and demos.

:class:`FixedFleet` is the real supervisor (its core, commands and wording) on a fake
process runner with a clock that stands still at :data:`FIXED_TIME`.  Building a scenario
plays a scripted hour of history through the engine (workers subscribing, a kill, a
scale-up, a crash loop), so every state on screen is one the engine itself produced, and a
key pressed in a test is answered by the engine's own rules.

``python -m rmqtui.demo [normal|crashloop|debug]`` runs the TUI on it.
"""

from __future__ import annotations

import math
import signal
import sys
import threading

from rmqtui.engine.api import CommandResult
from rmqtui.engine.protocol import Heartbeat, LogLine, Status
from rmqtui.engine.snapshot import BrokerState
from rmqtui.engine.stats import ProcessSample
from rmqtui.engine.supervisor.fake_runner import Exit, FakeRunner
from rmqtui.engine.supervisor.procs import Received
from rmqtui.testing.fake import FakeFleet, ManualClock, make_config

FIXED_TIME = 1_800_000_000.0
"""The instant every snapshot of a :class:`FixedFleet` is taken at."""

SCENARIOS = ("normal", "crashloop", "debug")
"""Names accepted by :class:`FixedFleet`."""

_MB = 1024 * 1024
_UP = 3725.0  # seconds of scripted history before FIXED_TIME

_ROUTES = [
    {"name": "sensor-data", "topic": "sensors/{device_id}/data", "handler": "app_routes.sensors:process_data",
     "shared": True, "workers": 3, "qos": 1},
    {"name": "telemetry", "topic": "telemetry/{site}/{metric}", "handler": "app_routes.telemetry:record",
     "shared": True, "workers": 1, "qos": 0},
    {"name": "alerts", "topic": "alerts/{severity}", "handler": "app_routes.alerts:notify", "shared": False,
     "workers": 1, "qos": 2},
]

# per slot: handled at FIXED_TIME, failed, msg/s, handler seconds, in flight, cpu %, rss MiB, uss MiB, fds, threads
_FIGURES = {
    "sensor-data/0": (1_482_113, 12, 139.4, 2_160.5, 1, 23.5, 48, 41, 14, 4),
    "sensor-data/1": (1_479_870, 9, 138.1, 2_141.0, 1, 22.9, 47, 40, 14, 4),
    "sensor-data/2": (1_201_004, 7, 134.5, 1_733.2, 0, 21.8, 46, 39, 13, 4),
    "sensor-data/3": (20_511, 0, 0.0, 30.2, 1, 3.1, 44, 38, 13, 4),
    "telemetry/0": (880_245, 0, 236.5, 410.9, 0, 31.2, 52, 45, 15, 5),
    "telemetry/1": (0, 0, 0.0, 0.0, 0, None, None, None, None, None),
    "alerts/0": (11_532, 3, 3.2, 95.1, 0, 0.7, 39, 33, 12, 3),
}


class FixedFleet(FakeFleet):
    """The engine on fixed data (see the module docstring).

    Every command is recorded in :attr:`calls` as ``(name, *args)``.  ``stop`` asks every
    worker to stop and, when ``stop_gate`` is given, waits for it to be set before the
    workers end, so a test can watch the drain.
    """

    def __init__(self, scenario: str = "normal", *, stop_gate: threading.Event | None = None) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.calls: list[tuple] = []
        self._stop_gate = stop_gate
        self._silent: set[str] = set()  # slots whose process never subscribes
        self._played = False  # after the history, new processes are still connecting: time stands still
        self._crashing: set[str] = set()  # slots whose process fails at once
        config = make_config(_ROUTES, path="routemq.toml", broker={"port": 18830},
                             fleet={"client_prefix": "rmq-demo-host", "log_level": "INFO"})
        figures = {key: ProcessSample(f[5], f[6] * _MB if f[6] else None, f[7] * _MB if f[7] else None, f[8], f[9],
                                      None) for key, f in _FIGURES.items()}
        runner = FakeRunner(self._behave, first_pid=48_200, drain_exits=False)
        super().__init__(config, runner=runner, clock=ManualClock(wall=FIXED_TIME - _UP, mono=0.0),
                         figures=figures, own=ProcessSample(1.2, 61 * _MB, 55 * _MB, 18, 6, None))
        self._core.set_broker(BrokerState.UP, pid=48_190, host="127.0.0.1", port=18830,
                              unix_path="/run/user/1000/rmqtui/app-3f2a9c1d0b7e/broker.sock", tcp=False)
        self._core.started = FIXED_TIME - _UP
        self._hostname = "demo-host"
        self._play()

    # -- the scripted hour ----------------------------------------------------------------------

    def _behave(self, key: str, spec) -> list:
        if spec.release_only:
            return [Exit(0)]
        if key in self._silent or self._played:
            return [Status("starting", "connecting to the broker")]
        out = [Status("subscribed"), LogLine(self.clock.wall, "INFO", f"subscribed to {spec.subscribe_filter}")]
        if key in self._crashing:
            out += [LogLine(self.clock.wall, "ERROR", "handler raised KeyError: 'site' (topic telemetry//cpu)"),
                    Exit(1, "KeyError: 'site'")]
        return out

    def _at(self, t: float) -> None:
        """Move the clock to ``t`` seconds into the history; every live worker beats first."""
        self.clock.advance(t - self.clock.mono)
        for key in list(self.runner.live):
            self.runner.queue.append(Received(key, self._beat(key, t)))
        self.pump()

    def _beat(self, key: str, t: float) -> Heartbeat:
        handled, failed, rate, seconds, in_flight = _FIGURES[key][:5]
        if key == "sensor-data/2" and t <= 2620:
            handled = seconds = failed = 0  # its first process; the counts shown are the second one's
        # traffic that rises and falls a little, so the sparklines look like traffic; counts only grow
        wobble = 2.0 * rate * (math.sin(t / 5.0 + len(key)) - math.sin(_UP / 5.0 + len(key)))
        done = max(0, int(handled - rate * (_UP - t) + wobble))
        part = done / handled if handled else 0.0
        wall = self.clock.wall
        return Heartbeat(wall, done + failed + in_flight, done, failed, 0, seconds * part,
                         wall - 0.004 if in_flight else None, True)

    def add_log(self, level: str, source: str, message: str) -> None:
        """Add a record to the fleet's log as the engine does (tests of log readers and streams)."""
        self._note(level, source, message)

    def _log(self, key: str, level: str, message: str) -> None:
        self.runner.queue.append(Received(key, LogLine(self.clock.wall, level, message)))

    def _play(self) -> None:
        self.pump()
        self._at(9.0)
        self._log("sensor-data/0", "WARNING", "device 'th-0042' sent a reading without 'temp'; skipped")
        self._at(2620.0)
        self.runner.end("sensor-data/2", -signal.SIGKILL)  # from outside: an OOM kill, say
        self._at(2620.0)
        self._at(2621.0)
        self._at(3574.0)
        self.add_worker("sensor-data")
        self._at(3575.0)
        if self.scenario == "crashloop":
            self._crashing.add("telemetry/1")
            self.scale("telemetry", 2)
            for _ in range(4):  # five failures within seconds: a crash loop
                self._at(self._core.find("telemetry/1").next_start)
        if self.scenario == "debug":
            self._at(3695.0)
            self.set_log_level("DEBUG")
            self._at(3696.0)
            self._log("sensor-data/1", "DEBUG", "sensors/th-0017/data -> process_data 1.4 ms")
            self._log("telemetry/0", "DEBUG", "telemetry/lyon/cpu -> record 0.5 ms")
            self._log("alerts/0", "DEBUG", "alerts/critical -> notify 12.8 ms")
        for t in range(int(_UP) - 62, int(_UP) - 1):  # the last minute, second by second: the sparklines
            self._at(float(t))
        self.remove_worker("sensor-data", "sensor-data/3")
        self._at(_UP - 1.0)
        if self.scenario != "crashloop":
            self._silent.add("telemetry/1")
            self.scale("telemetry", 2)
        self._at(_UP)
        self._played = True
        self.calls.clear()

    # -- FleetControl, with every call recorded -------------------------------------------------

    def add_worker(self, route: str) -> CommandResult:
        self.calls.append(("add_worker", route))
        return self._pumped(super().add_worker(route))

    def remove_worker(self, route: str, worker: str | None = None) -> CommandResult:
        self.calls.append(("remove_worker", route, worker))
        return self._pumped(super().remove_worker(route, worker))

    def scale(self, route: str, count: int) -> CommandResult:
        self.calls.append(("scale", route, count))
        return self._pumped(super().scale(route, count))

    def restart_worker(self, worker: str) -> CommandResult:
        self.calls.append(("restart_worker", worker))
        result = super().restart_worker(worker)
        if result.ok and worker in self.runner.live:
            self.runner.end(worker, 0)  # it finished its message and kept its session
        return self._pumped(result)

    def kill_worker(self, worker: str) -> CommandResult:
        self.calls.append(("kill_worker", worker))
        return self._pumped(super().kill_worker(worker))

    def set_log_level(self, level: str, worker: str | None = None) -> CommandResult:
        self.calls.append(("set_log_level", level, worker))
        return self._pumped(super().set_log_level(level, worker))

    def save_config(self) -> CommandResult:
        """Say what would be written (nothing touches the disk)."""
        self.calls.append(("save_config",))
        counts = ", ".join(f"{name}={pool.desired}" for name, pool in self._core.pools.items())
        self._note("INFO", "fleet", f"wrote worker counts to routemq.toml ({counts})")
        return self._pumped(CommandResult.accepted(f"wrote worker counts to routemq.toml ({counts})"))

    def reload_config(self) -> CommandResult:
        """The file is the one running: nothing changes live."""
        self.calls.append(("reload_config",))
        self._note("INFO", "fleet", "reloaded: no live change")
        return self._pumped(CommandResult.accepted("reloaded: no live change"))

    def start(self) -> None:
        """Nothing to start; present so the CLI can treat this like the real fleet."""
        self.calls.append(("start",))

    def force(self) -> None:
        """End every process now."""
        self.calls.append(("force",))
        super().force()
        self.pump()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop, wait for ``stop_gate`` if any, then let them all end."""
        self.calls.append(("stop", timeout))
        self.begin_stop()
        self.pump()
        if self._stop_gate is not None:
            self._stop_gate.wait(timeout)
        for key in list(self.runner.live):
            self.runner.end(key, 0)
        self.pump()
        self._core.set_broker(BrokerState.STOPPED)
        self._note("INFO", "fleet", "fleet stopped")
        self._pumped(None)

    def _pumped(self, result):
        self.pump()
        with self._lock:
            self._publish()
        return result


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
