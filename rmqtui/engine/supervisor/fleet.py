"""``Fleet``: the supervisor facade that front ends drive (implements ``FleetControl``).

One engine thread waits on the process runner, then, under the lock, applies what
happened to the pure core and collects the effects; it runs those effects (spawn,
signal, send) only after releasing the lock.  Commands take the lock just to be
checked and applied to the core's desired state; their effects are queued for the
engine thread, which they wake.  ``snapshot()`` and ``logs_since()`` never take the
lock: they read the last published immutable snapshot and the event ring.  The
embedded broker is kept by its own thread (:mod:`.broker_keeper`).
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from .. import config as config_mod
from .. import runtime
from ..api import CommandResult
from ..broker import BrokerError, BrokerLimits, EmbeddedBroker
from ..config import Config
from ..logfiles import FleetLog
from ..protocol import BrokerSettings, broker_settings
from ..snapshot import BrokerState, FleetSnapshot, LogRecord
from ..stats import ProcessSampler
from . import commands
from .broker_keeper import BrokerKeeper, start_embedded
from .core import FleetCore
from .policy import RestartPolicy
from .procs import Ended, ProcessRunner, start_method
from .reload import plan_reload, save_counts
from .slot import Send, Signal, Spawn
from .specs import worker_spec
from .state import (clean_stale_runtime, read_layout, remove_runtime_state, write_layout,
                    write_runtime_state)
from .view import RouteNotes, WorkerCache, build_snapshot, busy_pids, with_route_notes

_log = logging.getLogger("rmqtui.fleet")


class Fleet:
    """The supervisor. Implements :class:`rmqtui.engine.api.FleetControl`.

    ``fleet.start()`` starts the broker (when embedded) and the workers and returns; an
    engine thread keeps the fleet reconciled until ``stop()``.  ``fresh=True`` discards the
    embedded broker's stored sessions (messages queued for the slots) before it starts.
    """

    PUBLISH_EVERY = 1.0  # seconds between snapshots when only counters moved (a TUI refreshes once a second)
    BURST_GAP = 0.25  # seconds between snapshots at least while a burst of starts goes on

    def __init__(self, config: Config, *, sample_interval: float = 1.0, tick: float = 0.25, fresh: bool = False,
                 policy: RestartPolicy | None = None, runner=None, sampler=None,
                 clock: Callable[[], tuple[float, float]] | None = None,
                 jitter: Callable[[], float] = random.random) -> None:
        self.config = config
        self.tick = tick
        self.fresh = fresh
        # (monotonic, unix) time; a test or the demo passes a clock it moves itself
        self._clock = clock or (lambda: (time.monotonic(), time.time()))
        self._jitter = jitter  # a number in [0, 1) that spreads restart delays
        self._core = FleetCore(config, started=self._clock()[1], policy=policy)
        self.prefix = self._core.prefix
        self._lock = threading.Lock()
        self._pending: list = []  # effects of commands, run by the engine thread
        self._force_sig: int | None = None
        if runner is None:
            from .. import worker as worker_mod

            # "__main__" too, for Pythons where that preload works (worker.forkserve keeps it out of workers)
            runner = ProcessRunner(worker_mod.run, preload=("__main__", "rmqtui.engine.worker"),
                                   spare=worker_mod.wait_for_slot)
        self._runner = runner
        self._pids: tuple[int, ...] = ()
        self._busy: frozenset[int] = frozenset()  # pids handling messages (sampled every pass)
        self._sampler = sampler or ProcessSampler(lambda: self._pids, interval=sample_interval, busy=lambda: self._busy)
        self._keeper: BrokerKeeper | None = None
        self._state_dir: Path | None = None
        self._fleet_log: FleetLog | None = None
        self._state_file: Path | None = None
        self._layout: dict | None = None  # the slot layout last written to the state dir
        self._file_config = config
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._idle = threading.Event()
        self._stop_lock = threading.Lock()
        self.host, self.port = config.broker.host, config.broker.port
        self.unix_path: str | None = None  # the embedded broker's private socket, which every client uses
        self._tcp_login: tuple[str, str] | None = None  # the embedded broker's generated TCP credentials
        self._hostname = config_mod.host_id(config)  # the host id (default: host name) shown as "host"
        self._advice: dict[str, tuple[int | None, str]] = {}  # route -> the autoscaler's (count, reason)
        self._notes = RouteNotes()  # share skew per route over a sliding window
        self._workers = WorkerCache()  # each slot's last snapshot, kept while it does not change
        self._published = self._build(self._clock()[1])
        self._published_at = 0.0
        self._unpublished = False  # a state change not in a snapshot yet

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        """Start the broker (embedded mode) and the engine thread; raises BrokerError on failure."""
        # what the file said at start, before command-line overrides: reloads compare against it,
        # so a --port override or a live log-level toggle is not mistaken for an edit of the file
        try:
            self._file_config = config_mod.load(self.config.path)
        except (config_mod.ConfigError, OSError):
            self._file_config = self.config
        try:
            self._state_dir = runtime.fleet_state_dir(self.config.path)
            runtime.ensure_private_dir(self._state_dir / "logs")
            runtime.fleet_runtime_dir(self.config.path)
            self._open_fleet_log()
        except runtime.RuntimePathError as exc:  # the CLI reports a BrokerError as a clean start failure
            raise BrokerError(str(exc)) from None
        stale = clean_stale_runtime(self.config.path)
        if stale is not None:
            self._note("WARNING", "fleet", f"the previous supervisor (pid {stale}) did not stop cleanly; resuming "
                                           f"its slots and the broker's stored sessions")
        b = self.config.broker
        if b.embedded:
            # the private socket in the 0700 runtime directory is the only way in unless TCP is asked for;
            # a TCP listener then admits only the generated per-fleet login (and refuses a taken port)
            start_embedded(self, EmbeddedBroker(self._state_dir, host=b.host, port=b.port, binary=b.mosquitto,
                                                unix_socket=runtime.broker_socket(self.config.path),
                                                listen_tcp=b.listen_tcp, authenticate_tcp=True, move_if_taken=False,
                                                limits=BrokerLimits(max_packet_size=b.max_packet_size)))
        extra: dict = {"unix_path": self.unix_path, "tcp": self.unix_path is None or self._tcp_login is not None}
        if self._tcp_login:
            extra["username"], extra["password"] = self._tcp_login  # the file is 0600 in a 0700 directory
        self._state_file = write_runtime_state(self.config.path, self.host, self.port, **extra)
        with self._lock:
            self._pending += self._core.adopt(read_layout(self._state_dir), *self._clock())
        self._runner.prepare()
        atexit.register(self._atexit)
        self._sampler.start()
        self._thread = threading.Thread(target=self._run, name="rmqtui-engine", daemon=True)
        self._thread.start()
        self._note("INFO", "fleet", f"fleet started: {len(self._core.pools)} routes, {self.desired_total()} "
                                    f"workers, group '{self.config.fleet.group}'")

    def broker_settings(self) -> BrokerSettings:
        """How a client of this fleet (worker, release client, $SYS reader, test) reaches its broker."""
        return broker_settings(self.config.broker, self.host, self.port, self.unix_path)

    def _write_layout(self, layout: dict[str, list[int]]) -> None:
        """Remember the slots (outside the lock): a killed supervisor's successor releases the extra ones."""
        if self._state_dir is None or layout == self._layout:
            return
        try:
            write_layout(self._state_dir, layout)
            self._layout = layout
        except OSError as exc:
            self._note("WARNING", "fleet", f"could not record the slots in {self._state_dir}: {exc}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker keeping its session (the broker queues what arrives), then stop the broker.

        Safe to call from several threads and more than once: later calls wait for the first.
        """
        with self._stop_lock:
            if self._thread is not None:
                self._stop(timeout)

    def begin_stop(self) -> None:
        """Ask every worker to stop keeping its session, and return at once (``stop()`` waits)."""
        with self._lock:
            self._pending += self._core.begin_stop(*self._clock())
            self._publish()
        self._runner.wake()

    def _stop(self, timeout: float) -> None:
        self.begin_stop()
        for sig, wait in ((None, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            if sig is not None:
                self._note("WARNING", "fleet", f"stop: workers still running; sending {signal.Signals(sig).name}")
                self._force_sig = sig
                self._runner.wake()
            if self._idle.wait(wait):
                break
        self._halt.set()
        self._runner.wake()
        self._thread.join(timeout=5)
        self._thread = None
        self._sampler.stop()
        if self._keeper is not None:
            self._keeper.stop()
        remove_runtime_state(self._state_file)
        self._runner.close()
        self._note("INFO", "fleet", "fleet stopped")
        with self._lock:
            self._publish()
            self._close_fleet_log()

    def _open_fleet_log(self) -> None:
        """Copy every record of the ring (those so far, then each new one) to ``logs/fleet.log``."""
        try:
            self._fleet_log = FleetLog(self._state_dir / "logs" / "fleet.log")
        except OSError as exc:
            self._note("WARNING", "fleet", f"no fleet log file: {exc}")
            return
        ring = self._core.ring

        def sink(rec) -> None:
            self._fleet_log.write(rec.time, rec.level, rec.source, rec.message)

        with self._lock:
            for rec in ring.since(0):
                sink(rec)
            ring.sink = sink

    def _close_fleet_log(self) -> None:
        if self._fleet_log is not None:
            self._core.ring.sink = None
            self._fleet_log.close()
            self._fleet_log = None

    def force(self) -> None:
        """Kill every worker now (a second Ctrl-C): ``stop()`` then returns without waiting for drains."""
        with self._lock:
            self._core.forced = True
        self._note("WARNING", "fleet", "forced stop: killing every worker")
        self._force_sig = signal.SIGKILL
        self._runner.wake()

    def _atexit(self) -> None:
        if self._thread is not None:
            self.stop(timeout=5.0)

    def _broker_report(self, state: BrokerState, reason: str, *, pid=None, restarts=None) -> None:
        with self._lock:
            self._core.set_broker(state, reason, pid=pid, restarts=restarts)
            self._publish()

    # ------------------------------------------------------------ commands
    def _command(self, command, *args, now: bool = True) -> CommandResult:
        """Check and apply one command under the lock, queue its effects, wake the engine."""
        mono, wall = self._clock()
        with self._lock:
            result, effects = command(self._core, *args, *((mono, wall) if now else (wall,)))
            self._pending += effects
            self._publish()
        self._runner.wake()
        return result

    def add_worker(self, route: str) -> CommandResult:
        return self._command(commands.add_worker, route)

    def remove_worker(self, route: str, worker: str | None = None) -> CommandResult:
        return self._command(commands.remove_worker, route, worker)

    def scale(self, route: str, count: int) -> CommandResult:
        return self._command(commands.scale, route, count)

    def restart_worker(self, worker: str) -> CommandResult:
        return self._command(commands.restart_worker, worker)

    def kill_worker(self, worker: str) -> CommandResult:
        return self._command(commands.kill_worker, worker)

    def set_log_level(self, level: str, worker: str | None = None) -> CommandResult:
        return self._command(commands.set_log_level, level, worker, now=False)

    def save_config(self) -> CommandResult:
        with self._lock:
            counts = {name: pool.desired for name, pool in self._core.pools.items()}
        return save_counts(self.config, counts, self._note)

    def reload_config(self) -> CommandResult:
        """Re-read the config file and apply what can change live: worker counts and the log level.

        A file with an error changes nothing (the fleet keeps running as it was) and the error
        is reported; changes that need a restart (routes added or removed, a topic, handler,
        QoS, group or broker setting) are listed and left alone.
        """
        try:
            new = config_mod.load(self.config.path)
        except config_mod.ConfigError as exc:
            self._note("ERROR", "fleet", f"reload refused; the fleet keeps running unchanged: {exc}")
            return CommandResult.refused(f"{Path(exc.path).name} has an error, nothing changed: {exc.problem}")
        applied: list[str] = []
        with self._lock:
            desired = {name: pool.desired for name, pool in self._core.pools.items()}
            plan = plan_reload(self.config, self._file_config, new, desired)
            for name, count in plan.counts.items():
                if commands.set_desired(self._core, self._core.pools[name], count, self._clock()[1]).ok:
                    applied.append(f"{name}: {count} workers")
            self._file_config = new
        if plan.log_level is not None:
            self.set_log_level(plan.log_level)
            applied.append(f"log level {plan.log_level}")
        message = "reloaded: " + (", ".join(applied) if applied else "no live change")
        if plan.restart:
            message += "; needs a restart to apply: " + "; ".join(plan.restart)
        self._note("WARNING" if plan.restart else "INFO", "fleet", message)
        self._runner.wake()
        return CommandResult.accepted(message)

    # ---------------------------------------------------------- snapshots
    def snapshot(self) -> FleetSnapshot:
        """The last published snapshot (at most one tick old); never waits for the engine."""
        return self._published

    def logs_since(self, seq: int) -> list[LogRecord]:
        """Records after ``seq``, oldest first; reads the ring without the engine lock."""
        return self._core.ring.since(seq)

    def desired_total(self) -> int:
        """Workers the pools want."""
        return self._core.desired_total()

    def advise(self, route: str, count: int | None, reason: str) -> None:
        """The autoscaler's latest recommendation for ``route``: shown in every front end's snapshot."""
        self._advice[route] = (count, reason)

    def _build(self, wall: float) -> FleetSnapshot:
        own = self._sampler.own
        return with_route_notes(self._notes, build_snapshot(
            self._core, wall, self._sampler.get, cache=self._workers,
            supervisor=(os.getpid(), own.cpu_percent if own else None, own.rss if own else None),
            hostname=self._hostname,
            extra={"sample_seconds": self._sampler.last_pass_seconds, "start_method": start_method(),
                   "log_dir": str(self._state_dir / "logs") if self._state_dir is not None else ""}),
            self._advice)

    def _publish(self) -> None:
        """Swap in a new snapshot; called with the lock held."""
        self._published = snap = self._build(self._clock()[1])
        self._pids = tuple(self._core.worker_pids())
        self._busy = busy_pids(snap)

    def _note(self, level: str, source: str, message: str) -> None:
        with self._lock:
            self._core.note(level, source, message, self._clock()[1])

    # -------------------------------------------------------- engine loop
    def _run(self) -> None:
        next_tick = 0.0
        while not self._halt.is_set():
            try:
                next_tick = self._step(next_tick)
            except Exception as exc:  # the loop must survive; report and go on
                _log.exception("engine step failed")
                self._note("ERROR", "fleet", f"internal error in the engine loop: {type(exc).__name__}: {exc}")
                self._halt.wait(0.2)

    def pump(self, rounds: int = 100) -> None:
        """Run engine steps on the caller's thread until the runner has nothing more to report.

        For a fleet that was not started, on a fake runner (the demo, unit tests): what the engine
        thread does, step by step, with the fleet's own clock."""
        for _ in range(rounds):
            records = self._step(0.0, pumping=True)
            if not records and not self._pending and not self._runner.busy():
                return

    def _step(self, next_tick: float, *, pumping: bool = False):
        records, woken = self._runner.wait(next_tick - self._clock()[0])
        if self._force_sig is not None:
            sig, self._force_sig = self._force_sig, None
            self._runner.kill_all(sig)
        now, wall = self._clock()
        core = self._core
        layout = None
        with self._lock:
            effects, self._pending = self._pending, []
            changed = woken
            for rec in records:
                if isinstance(rec, Ended):
                    effects += core.exited(rec.key, rec.code, rec.tail, rec.mid, now, wall, self._jitter())
                    changed = True
                else:
                    changed |= core.message(rec.key, rec.message, now, wall)
            self._unpublished |= changed  # kept until a snapshot shows it, even if this step does not tick
            if (changed and not core.backlog) or now >= next_tick:  # a start burst: O(workers) ticks 20/s
                effects += core.tick(now, wall, self._jitter())
                next_tick = now + (0.05 if core.backlog else self.PUBLISH_EVERY if core.calm else self.tick)
                # heartbeats alone republish once a second (a calm tick's own second); a state change at
                # once, but at most every BURST_GAP while starts are held back (a 1,000-worker start)
                burst = self.BURST_GAP if core.backlog else 0.0
                due = self._published_at + (burst if self._unpublished else self.PUBLISH_EVERY - 0.05)
                if pumping or now >= due:
                    self._publish()
                    self._published_at, self._unpublished = now, False
                elif self._unpublished:
                    next_tick = min(next_tick, due)
                layout = core.layout()
            jobs = [(e, worker_spec(core, self, e) if isinstance(e, Spawn) else None) for e in effects]
            if core.stopping and core.idle():
                self._idle.set()
        if jobs:
            self._run_effects(jobs)
        if layout is not None:
            self._write_layout(layout)
        return records if pumping else next_tick

    def _run_effects(self, jobs: list) -> None:
        """Run effects outside the lock; a spawn's outcome goes back to the core, which may answer."""
        while jobs:
            effect, spec = jobs.pop(0)
            if isinstance(effect, Signal):
                self._runner.signal(effect.key, effect.pid, effect.sig)
            elif isinstance(effect, Send):
                self._runner.send(effect.key, effect.message)
            elif isinstance(effect, Spawn):  # with the spawns right after it, started side by side
                batch = [(effect, spec)]
                while jobs and isinstance(jobs[0][0], Spawn):
                    batch.append(jobs.pop(0))
                more, outcomes = [], self._runner.spawn_many([(e.key, s) for e, s in batch])
                with self._lock:  # a failed start (an exception) makes its slot back off; the rest go on
                    for (e, _), pid in zip(batch, outcomes):
                        more += (self._core.spawn_failed(e.key, str(pid), *self._clock()) if
                                 isinstance(pid, Exception) else self._core.spawned(e.key, pid, *self._clock()))
                    self._pids = tuple(self._core.worker_pids())
                jobs += [(e, None) for e in more if not isinstance(e, Spawn)]
