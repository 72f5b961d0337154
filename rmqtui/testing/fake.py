"""The real supervisor on a fake process runner with a clock the caller moves: for policy tests and the demo.

``FakeFleet(config)`` is a :class:`~rmqtui.engine.supervisor.Fleet` that is never started: no
broker, no thread, no process.  ``advance(seconds)`` moves its clock and runs the engine until
it is quiet; ``runner`` scripts what the "processes" do (see :class:`FakeRunner`).
"""

from __future__ import annotations

from pathlib import Path

from rmqtui.engine.config import BrokerConfig, Config, FleetConfig, RouteConfig
from rmqtui.engine.stats import ProcessSample
from rmqtui.engine.supervisor import Fleet
from rmqtui.engine.supervisor.policy import RestartPolicy
from rmqtui.engine.supervisor.fake_runner import FakeRunner
from rmqtui.engine.supervisor.procs import Received


class ManualClock:
    """(monotonic, unix) time that moves only when told."""

    def __init__(self, wall: float = 1_800_000_000.0, mono: float = 1000.0) -> None:
        self.mono = mono
        self.wall = wall

    def __call__(self) -> tuple[float, float]:
        return self.mono, self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


class FakeSampler:
    """Fixed process figures by slot id (through the runner's pid table), and for the supervisor itself."""

    def __init__(self, runner: FakeRunner, figures: dict[str, ProcessSample] | None = None,
                 own: ProcessSample | None = None) -> None:
        self.runner = runner
        self.figures = figures or {}
        self.own = own
        self.last_pass_seconds = 0.0

    def get(self, pid: int | None) -> ProcessSample | None:
        if pid is None:
            return None
        key = next((k for k, p in self.runner.live.items() if p == pid), None)
        return self.figures.get(key) if key else None

    def start(self) -> None:
        """Nothing runs."""

    def stop(self) -> None:
        """Nothing runs."""


def make_config(routes: list[dict], *, fleet: dict | None = None, broker: dict | None = None,
                path: str = "routemq.toml") -> Config:
    """A :class:`Config` built in memory (no file, no handler check)."""
    f = {"group": "workers", "client_prefix": "rmq-test"}
    f.update(fleet or {})
    return Config(path=Path(path), broker=BrokerConfig(**(broker or {})), fleet=FleetConfig(**f),
                  routes=tuple(RouteConfig(**r) for r in routes))


class FakeFleet(Fleet):
    """A never-started Fleet on a :class:`FakeRunner` and a :class:`ManualClock`."""

    def __init__(self, config: Config, *, runner: FakeRunner | None = None, clock: ManualClock | None = None,
                 policy: RestartPolicy | None = None, figures: dict | None = None,
                 own: ProcessSample | None = None) -> None:
        self.clock = clock or ManualClock()
        self.runner = runner or FakeRunner()
        super().__init__(config, runner=self.runner, clock=self.clock, policy=policy,
                         sampler=FakeSampler(self.runner, figures, own), jitter=lambda: 0.5)

    def advance(self, seconds: float = 0.0) -> None:
        """Move the clock and run the engine until nothing is left to do."""
        self.clock.advance(seconds)
        self.pump()

    def tell(self, key: str, *messages) -> None:
        """Deliver protocol messages from slot ``key``'s process."""
        for m in messages:
            self.runner.queue.append(Received(key, m))
        self.pump()

    def end(self, key: str, code: int, tail: str = "", mid: int = 0) -> None:
        """Make slot ``key``'s process end with ``code``."""
        self.runner.end(key, code, tail, mid)
        self.pump()

    def slot(self, key: str):
        """The core's slot ``key`` (for assertions on the state machine)."""
        return self._core.find(key)

    def start(self) -> None:
        """Nothing to start: the engine runs on :meth:`advance`; the first reconcile happens here."""
        self.pump()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop and run the engine until they have (as far as the runner lets them)."""
        self.begin_stop()
        self.pump()
