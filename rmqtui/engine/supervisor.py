"""``Fleet``: the supervisor of every worker process and of the embedded broker.

Each route has a desired worker count; one reconcile step, run by the engine
thread a few times a second, makes reality match it: it spawns missing slots,
drains extra ones, restarts dead ones with backoff, spots crash loops and hung
workers.  Commands from front ends only change desired state and wake the
engine thread.  Process exits, heartbeats and log records all arrive on one
selector that lives as long as the fleet, so there is one place where state
changes.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import multiprocessing
import os
import selectors
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from . import config as config_mod
from . import worker as worker_mod
from .api import CommandResult
from .broker import BrokerError, EmbeddedBroker
from .config import Config, RouteConfig
from .protocol import EXIT_FAILED, BrokerSettings, Drain, Heartbeat, LogLine, SetLogLevel, Status, WorkerSpec
from .snapshot import (BrokerSnapshot, BrokerState, FleetSnapshot, LogRecord, RouteSnapshot, WorkerSnapshot,
                       WorkerState)
from .stats import ProcessSampler
from .topics import TopicPattern, shared_filter

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CRASH_WINDOW = 30.0  # seconds in which repeated crashes count as a loop
CRASHLOOP_AFTER = 5  # crashes within CRASH_WINDOW
MAX_BACKOFF = 30.0
HISTORY = 60  # seconds of route throughput kept for sparklines
LOG_HISTORY = 5000

_log = logging.getLogger("rmqtui.fleet")


def start_method() -> str:
    """The multiprocessing start method for workers: forkserver, which is safe with threads
    and, with the worker module preloaded, starts a worker in a few milliseconds."""
    return os.environ.get("RMQTUI_START_METHOD", "forkserver")


def runtime_state_path(config_path: Path) -> Path:
    """Where a running fleet announces its broker address for ``rmqtui load`` and friends."""
    import hashlib

    key = hashlib.sha1(str(Path(config_path).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"rmqtui-{os.getuid()}" / f"{key}.json"


@dataclass
class _Slot:
    """One worker slot of a route: a stable client id and the process currently serving it."""

    route: str
    index: int
    client_id: str
    current_mid: Any  # shared int: the mid the worker is handling, read after a crash
    log_level: str
    process: Any = None
    conn: Any = None
    state: WorkerState = WorkerState.STARTING
    reason: str = ""
    hb: Heartbeat | None = None
    base: list = field(default_factory=lambda: [0, 0, 0, 0, 0.0])  # received, handled, failed, dead, seconds
    restarts: int = 0
    crashes: collections.deque = field(default_factory=lambda: collections.deque(maxlen=32))
    next_start: float = 0.0
    retiring: bool = False
    restarting: bool = False
    releasing: bool = False
    drain_since: float | None = None
    started: float | None = None  # wall time the current process started
    last_beat: float = 0.0  # monotonic
    rate: float = 0.0
    rate_mark: tuple[float, int] | None = None
    last_exit: int | None = None
    kill_reason: str = ""
    poison_counts: dict = field(default_factory=dict)
    poison: set = field(default_factory=set)

    @property
    def id(self) -> str:
        return f"{self.route}/{self.index}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def totals(self) -> tuple[int, int, int, int, float]:
        b, hb = self.base, self.hb
        if hb is None:
            return b[0], b[1], b[2], b[3], b[4]
        return (b[0] + hb.received, b[1] + hb.handled, b[2] + hb.failed, b[3] + hb.dead_lettered,
                b[4] + hb.handler_seconds)

    def fold(self) -> None:
        """Add the finished process's counters to the slot's base."""
        if self.hb is not None:
            t = self.totals()
            self.base = list(t)
            self.hb = None


@dataclass
class _Pool:
    route: RouteConfig
    pattern: TopicPattern
    filter: str
    desired: int
    slots: dict = field(default_factory=dict)  # index -> _Slot
    base: list = field(default_factory=lambda: [0, 0, 0])  # received, handled, failed of removed slots
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY))


class Fleet:
    """The supervisor. Implements :class:`rmqtui.engine.api.FleetControl`.

    ``fleet.start()`` starts the broker (when embedded) and the workers and
    returns; an engine thread keeps the fleet reconciled until ``stop()``.
    """

    def __init__(self, config: Config, *, sample_interval: float = 1.0, tick: float = 0.25) -> None:
        self.config = config
        self.tick = tick
        self.prefix = config_mod.client_prefix(config)
        self.log_level = config.fleet.log_level
        self._lock = threading.RLock()
        self._logs: collections.deque[LogRecord] = collections.deque(maxlen=LOG_HISTORY)
        self._seq = 0
        self._pools: dict[str, _Pool] = {}
        for r in config.routes:
            pattern = TopicPattern.parse(r.topic)
            flt = shared_filter(r.group or config.fleet.group, pattern.filter) if r.shared else pattern.filter
            self._pools[r.name] = _Pool(r, pattern, flt, r.workers)
        self._ctx = multiprocessing.get_context(start_method())
        self._runtime: Path | None = None
        self._broker: EmbeddedBroker | None = None
        self._file_config = config
        self._broker_state = BrokerState.STARTING if config.broker.embedded else BrokerState.STARTING
        self._broker_reason = ""
        self._broker_retry_at = 0.0
        self._started = time.time()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._stop_lock = threading.Lock()
        self._idle = threading.Event()  # set when stopping and no process is left
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, (None, "wake"))
        self._next_house = 0.0
        self._sampler = ProcessSampler(self._live_pids, interval=sample_interval)
        self._me = psutil.Process()
        self._me.cpu_percent(None)
        self._last_history = time.monotonic()
        self.host = self.port = None

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        """Start the broker (embedded mode) and the engine thread; raises BrokerError on failure."""
        # what the file said at start, before command-line overrides: reloads compare against it,
        # so a --port override or a live log-level toggle is not mistaken for an edit of the file
        try:
            self._file_config = config_mod.load(self.config.path)
        except (config_mod.ConfigError, OSError):
            self._file_config = self.config
        self._runtime = Path(tempfile.mkdtemp(prefix="rmqtui-"))
        (self._runtime / "workers").mkdir()
        b = self.config.broker
        if b.embedded:
            self._broker = EmbeddedBroker(self._runtime, host=b.host, port=b.port, binary=b.mosquitto)
            try:
                self._broker.start()
            except BrokerError:
                shutil.rmtree(self._runtime, ignore_errors=True)
                raise
            self.host, self.port = self._broker.host, self._broker.port
            self._broker_state = BrokerState.UP
            if self._broker.moved_from:
                self._event("WARNING", "broker", f"port {self._broker.moved_from} is taken; the embedded broker "
                                                 f"listens on {self.host}:{self.port} instead")
            self._event("INFO", "broker", f"embedded Mosquitto pid {self._broker.pid} on {self.host}:{self.port}")
        else:
            self.host, self.port = b.host, b.port
        self._write_state_file()
        if start_method() == "forkserver":
            from multiprocessing import forkserver

            # "__main__" too: otherwise every worker re-imports the parent's main script itself
            self._ctx.set_forkserver_preload(["__main__", "rmqtui.engine.worker"])
            # start it now, from the caller's thread: a front end (Textual) may replace sys.stderr
            # with an object without a file descriptor, and the fork server cannot start then
            forkserver.ensure_running()
        atexit.register(self._atexit)
        self._sampler.start()
        self._thread = threading.Thread(target=self._run, name="rmqtui-engine", daemon=True)
        self._thread.start()
        self._event("INFO", "fleet", f"fleet started: {len(self._pools)} routes, {self.desired_total()} workers, "
                                     f"group '{self.config.fleet.group}'")

    def stop(self, timeout: float = 10.0) -> None:
        """Drain every worker (unsubscribe, finish the backlog, end the session), then stop the broker.

        Safe to call from several threads and more than once: later calls wait for the first.
        """
        with self._stop_lock:
            if self._thread is not None:
                self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        with self._lock:
            first = not self._stopping
            self._stopping = True
            if first:
                self._event("INFO", "fleet", "stopping: draining every worker")
                per_worker = max(0.5, min(self.config.fleet.drain_timeout, timeout - 1.0))
                for slot in self._all_slots():
                    if slot.process is not None and slot.drain_since is None:
                        self._send(slot, Drain(timeout=per_worker))
                        slot.drain_since = time.monotonic()
                        slot.state, slot.reason = WorkerState.DRAINING, "fleet stopping"
        self._wake()
        if not self._idle.wait(timeout):
            self._force_all(signal.SIGTERM)
            if not self._idle.wait(2.0):
                self._force_all(signal.SIGKILL)
                self._idle.wait(2.0)
        self._halt.set()
        self._wake()
        self._thread.join(timeout=5)
        self._thread = None
        self._sampler.stop()
        if self._broker is not None:
            self._broker.stop()
            self._broker_state = BrokerState.STOPPED
        try:
            runtime_state_path(self.config.path).unlink()
        except OSError:
            pass
        if self._runtime is not None:
            shutil.rmtree(self._runtime, ignore_errors=True)
        self._stop_forkserver()
        self._event("INFO", "fleet", "fleet stopped")

    def force(self) -> None:
        """Kill every worker now (a second Ctrl-C): ``stop()`` then returns without waiting for drains."""
        self._event("WARNING", "fleet", "forced stop: killing every worker")
        self._force_all(signal.SIGKILL)

    def _atexit(self) -> None:
        if self._thread is not None:
            self.stop(timeout=5.0)

    def _stop_forkserver(self) -> None:
        if start_method() != "forkserver":
            return
        from multiprocessing import forkserver, resource_tracker

        # private but stable since 3.8: the helpers end with our process anyway; stopping them
        # here makes `stop()` leave no child behind, which is what embedders and tests expect
        for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
            stop = getattr(helper, "_stop", None)
            if stop is not None:
                try:
                    stop()
                except (OSError, ChildProcessError, TypeError):  # TypeError: helper never started
                    pass

    def _force_all(self, sig: int) -> None:
        with self._lock:
            for slot in self._all_slots():
                if slot.pid is not None:
                    try:
                        os.kill(slot.pid, sig)
                    except ProcessLookupError:
                        pass

    def _write_state_file(self) -> None:
        path = runtime_state_path(self.config.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pid": os.getpid(), "host": self.host, "port": self.port,
                                    "config": str(self.config.path.resolve())}))

    # ------------------------------------------------------------ commands
    def add_worker(self, route: str) -> CommandResult:
        with self._lock:
            pool = self._pools.get(route)
            if pool is None:
                return CommandResult.refused(f"no route called '{route}'")
            return self._set_desired(pool, pool.desired + 1)

    def remove_worker(self, route: str, worker: str | None = None) -> CommandResult:
        with self._lock:
            pool = self._pools.get(route)
            if pool is None:
                return CommandResult.refused(f"no route called '{route}'")
            if pool.desired <= 1:
                return CommandResult.refused(
                    f"route '{route}' keeps its last worker: with no member the broker drops its messages "
                    f"(scale it to 0 on purpose with `scale`)")
            if worker is not None:
                slot = self._find(worker)
                if slot is None or slot.route != route or slot.retiring:
                    return CommandResult.refused(f"no active worker '{worker}' on route '{route}'")
                pool.desired -= 1
                self._retire(pool, slot)
                self._wake()
                return CommandResult.accepted(f"draining {worker}; route '{route}' now wants {pool.desired}")
            return self._set_desired(pool, pool.desired - 1)

    def scale(self, route: str, count: int) -> CommandResult:
        with self._lock:
            pool = self._pools.get(route)
            if pool is None:
                return CommandResult.refused(f"no route called '{route}'")
            return self._set_desired(pool, count)

    def _set_desired(self, pool: _Pool, count: int) -> CommandResult:
        name = pool.route.name
        if count < 0:
            return CommandResult.refused("a worker count cannot be negative")
        if count > 1 and not pool.route.shared:
            return CommandResult.refused(
                f"route '{name}' is not shared: a second worker would handle every message twice "
                f"(set shared = true for it in routemq.toml to scale it)")
        before, pool.desired = pool.desired, count
        self._wake()
        return CommandResult.accepted(f"route '{name}': {count} worker{'s' if count != 1 else ''} wanted "
                                      f"(was {before})")

    def restart_worker(self, worker: str) -> CommandResult:
        with self._lock:
            slot = self._find(worker)
            if slot is None or slot.retiring:
                return CommandResult.refused(f"no worker '{worker}'")
            if slot.process is not None and not slot.releasing:
                if slot.restarting:
                    return CommandResult.refused(f"{worker} is already restarting")
                slot.restarting = True
                slot.drain_since = time.monotonic()
                slot.state, slot.reason = WorkerState.DRAINING, "restarting: finishing the current message"
                self._send(slot, Drain(timeout=self.config.fleet.drain_timeout, keep_session=True))
            else:
                slot.crashes.clear()
                slot.next_start = 0.0
                slot.state, slot.reason = WorkerState.STARTING, "restart requested"
            self._event("INFO", "fleet", f"{worker}: restart requested")
            self._wake()
            return CommandResult.accepted(f"restarting {worker}")

    def kill_worker(self, worker: str) -> CommandResult:
        with self._lock:
            slot = self._find(worker)
            if slot is None or slot.pid is None:
                return CommandResult.refused(f"worker '{worker}' has no running process")
            pid = slot.pid
            slot.kill_reason = "killed by the operator (SIGKILL)"
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return CommandResult.refused(f"{worker} (pid {pid}) had already exited")
        self._event("WARNING", "fleet", f"{worker}: sent SIGKILL to pid {pid}")
        return CommandResult.accepted(f"sent SIGKILL to {worker} (pid {pid})")

    def set_log_level(self, level: str, worker: str | None = None) -> CommandResult:
        level = level.upper()
        if level not in LEVELS:
            return CommandResult.refused(f"unknown log level '{level}' (use one of {', '.join(LEVELS)})")
        with self._lock:
            if worker is None:
                self.log_level = level
                slots = list(self._all_slots())
            else:
                slot = self._find(worker)
                if slot is None:
                    return CommandResult.refused(f"no worker '{worker}'")
                slots = [slot]
            for slot in slots:
                slot.log_level = level
                if slot.process is not None:
                    self._send(slot, SetLogLevel(level))
        target = worker or "every worker"
        self._event("INFO", "fleet", f"log level of {target} set to {level}")
        return CommandResult.accepted(f"log level of {target}: {level}")

    def save_config(self) -> CommandResult:
        with self._lock:
            counts = {name: pool.desired for name, pool in self._pools.items()}
        try:
            backup = config_mod.save_worker_counts(self.config, counts)
        except OSError as exc:
            return CommandResult.refused(f"could not write {self.config.path}: {exc}")
        except config_mod.ConfigError as exc:
            return CommandResult.refused(exc.problem + (f" ({exc.fix})" if exc.fix else ""))
        self._event("INFO", "fleet", f"wrote worker counts to {self.config.path} (backup {backup})")
        return CommandResult.accepted(f"wrote worker counts to {self.config.path.name} (previous file kept as "
                                      f"{Path(backup).name}; comments are not kept)")

    def reload_config(self) -> CommandResult:
        """Re-read the config file and apply what can change live: worker counts and the log level.

        A file with an error changes nothing (the fleet keeps running as it was) and the error
        is reported; changes that need a restart (routes added or removed, a topic, handler,
        QoS, group or broker setting) are listed and left alone.
        """
        try:
            new = config_mod.load(self.config.path)
        except config_mod.ConfigError as exc:
            self._event("ERROR", "fleet", f"reload refused; the fleet keeps running unchanged: {exc}")
            return CommandResult.refused(f"{Path(exc.path).name} has an error, nothing changed: {exc.problem}")
        applied: list[str] = []
        restart: list[str] = []
        with self._lock:
            names = {r.name for r in new.routes}
            restart += [f"route '{n}' was removed" for n in self._pools if n not in names]
            for r in new.routes:
                pool = self._pools.get(r.name)
                if pool is None:
                    restart.append(f"route '{r.name}' is new")
                    continue
                old = pool.route
                if (r.topic, r.handler, r.shared, r.qos, r.group) != (old.topic, old.handler, old.shared, old.qos,
                                                                       old.group):
                    restart.append(f"route '{r.name}' changed beyond its worker count")
                if r.workers != pool.desired and self._set_desired(pool, r.workers).ok:
                    applied.append(f"{r.name}: {r.workers} workers")
            before = self._file_config
            if new.broker != before.broker or (new.fleet.group, new.fleet.handlers) != (
                    before.fleet.group, before.fleet.handlers):
                restart.append("broker or fleet settings changed")
            self._file_config = new
        if new.fleet.log_level != before.fleet.log_level:
            self.set_log_level(new.fleet.log_level)
            applied.append(f"log level {new.fleet.log_level}")
        message = "reloaded: " + (", ".join(applied) if applied else "no live change")
        if restart:
            message += "; needs a restart to apply: " + "; ".join(restart)
        self._event("WARNING" if restart else "INFO", "fleet", message)
        return CommandResult.accepted(message)

    # ---------------------------------------------------------- snapshots
    def logs_since(self, seq: int) -> list[LogRecord]:
        with self._lock:
            if not self._logs or self._logs[-1].seq <= seq:
                return []
            out = []
            for rec in reversed(self._logs):
                if rec.seq <= seq:
                    break
                out.append(rec)
            out.reverse()
            return out

    def desired_total(self) -> int:
        return sum(p.desired for p in self._pools.values())

    def snapshot(self) -> FleetSnapshot:
        now = time.time()
        with self._lock:
            workers = []
            routes = []
            for pool in self._pools.values():
                r_recv, r_hand, r_fail = pool.base
                running = 0
                rate = 0.0
                for slot in sorted(pool.slots.values(), key=lambda s: s.index):
                    workers.append(self._worker_snapshot(slot, now))
                    received, handled, failed, _, _ = slot.totals()
                    r_recv += received
                    r_hand += handled
                    r_fail += failed
                    rate += slot.rate
                    if slot.process is not None and not slot.releasing:
                        running += 1
                routes.append(RouteSnapshot(
                    name=pool.route.name, topic=pool.route.topic, filter=pool.filter, shared=pool.route.shared,
                    qos=pool.route.qos, desired=pool.desired, running=running, received=r_recv, handled=r_hand,
                    failed=r_fail, rate=rate, history=tuple(pool.history)))
            b = self.config.broker
            broker = BrokerSnapshot(
                host=self.host or b.host, port=self.port or b.port, embedded=b.embedded, state=self._broker_state,
                protocol=b.protocol, reason=self._broker_reason,
                pid=self._broker.pid if self._broker else None,
                restarts=self._broker.restarts if self._broker else 0)
            try:
                cpu = self._me.cpu_percent(None)
                rss = self._me.memory_info().rss
            except psutil.Error:
                cpu = rss = None
            return FleetSnapshot(
                time=now, started=self._started, group=self.config.fleet.group, config_path=str(self.config.path),
                broker=broker, routes=tuple(routes), workers=tuple(workers), log_level=self.log_level,
                stopping=self._stopping, supervisor_pid=os.getpid(), supervisor_cpu=cpu, supervisor_rss=rss,
                hostname=socket.gethostname(),
                extra={"sample_seconds": self._sampler.last_pass_seconds, "start_method": start_method()})

    def _worker_snapshot(self, slot: _Slot, now: float) -> WorkerSnapshot:
        received, handled, failed, dead, seconds = slot.totals()
        sample = self._sampler.get(slot.pid) if not slot.releasing else None
        pid = slot.pid if not slot.releasing else None
        return WorkerSnapshot(
            id=slot.id, route=slot.route, slot=slot.index, client_id=slot.client_id, pid=pid, state=slot.state,
            reason=slot.reason, received=received, handled=handled, failed=failed, dead_lettered=dead,
            rate=slot.rate, handler_seconds=seconds, in_flight=1 if slot.hb and slot.hb.busy_since else 0,
            cpu_percent=sample.cpu_percent if sample else None,
            cpu_seconds=sample.cpu_seconds if sample else None, rss=sample.rss if sample else None,
            uss=sample.uss if sample else None, fds=sample.fds if sample else None,
            threads=sample.threads if sample else None, restarts=slot.restarts,
            uptime=(now - slot.started) if (slot.started and pid) else None, log_level=slot.log_level,
            last_exit=slot.last_exit)

    # -------------------------------------------------------- engine loop
    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                self._step()
            except Exception as exc:  # the loop must survive; report and go on
                _log.exception("engine step failed")
                self._event("ERROR", "fleet", f"internal error in the engine loop: {type(exc).__name__}: {exc}")
                time.sleep(0.2)

    def _step(self) -> None:
        # One selector for the fleet's life: a heartbeat costs O(1), not a re-registration of
        # every worker's pipe (that made an idle 100-worker fleet cost a quarter of a core).
        events = self._sel.select(max(0.0, self._next_house - time.monotonic()))
        with self._lock:
            urgent = False
            exits = []
            for key, _ in events:
                slot, kind = key.data
                if kind == "wake":
                    urgent = True
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                elif kind == "msg":
                    if slot.conn is not None:
                        self._receive_one(slot)
                else:
                    exits.append(slot)
            for slot in exits:
                if slot.conn is not None:
                    self._drain_conn(slot)
                self._on_exit(slot)
            now = time.monotonic()
            # housekeeping is O(workers): at most once per tick, or at once after a command or an exit
            if urgent or exits or now >= self._next_house:
                self._next_house = now + self.tick
                self._check_broker()
                self._check_hung()
                self._reconcile()
                self._update_history()
                if self._stopping and not any(s.process is not None for s in self._all_slots()):
                    self._idle.set()

    def _watch(self, fileobj: Any, slot: _Slot, kind: str) -> None:
        self._sel.register(fileobj, selectors.EVENT_READ, (slot, kind))

    def _unwatch(self, fileobj: Any) -> None:
        try:
            self._sel.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def _receive_one(self, slot: _Slot) -> None:
        # one message per readiness event: the selector is level-triggered and reports the pipe
        # again while data is left, and Connection.poll() would build a new selector every call
        try:
            self._handle(slot, slot.conn.recv())
        except (EOFError, OSError):
            self._unwatch(slot.conn)
            slot.conn.close()
            slot.conn = None

    def _drain_conn(self, slot: _Slot) -> None:
        conn = slot.conn
        try:
            while conn.poll():
                self._handle(slot, conn.recv())
        except (EOFError, OSError):
            self._unwatch(conn)
            conn.close()
            slot.conn = None

    def _handle(self, slot: _Slot, msg: Any) -> None:
        if isinstance(msg, Heartbeat):
            slot.hb = msg
            slot.last_beat = time.monotonic()
            self._update_rate(slot, msg)
        elif isinstance(msg, Status):
            if slot.releasing:
                return
            state = WorkerState(msg.state)
            if slot.drain_since is not None and state not in (WorkerState.FAILED, WorkerState.STOPPED):
                state = WorkerState.DRAINING
            if state != slot.state or msg.reason != slot.reason:
                if state in (WorkerState.FAILED, WorkerState.DISCONNECTED) and msg.reason != slot.reason:
                    self._event("ERROR" if state is WorkerState.FAILED else "WARNING", slot.id, msg.reason)
                if state is WorkerState.SUBSCRIBED and slot.state is WorkerState.DISCONNECTED:
                    self._event("INFO", slot.id, "reconnected and subscribed")
                slot.state, slot.reason = state, msg.reason
                if state is WorkerState.FAILED and "refused the connection" in msg.reason:
                    self._broker_state, self._broker_reason = BrokerState.AUTH_FAILED, msg.reason
                elif state is WorkerState.SUBSCRIBED and self._broker_state is BrokerState.AUTH_FAILED:
                    self._broker_state, self._broker_reason = BrokerState.UP, ""
        elif isinstance(msg, LogLine):
            self._event(msg.level, slot.id, msg.message, when=msg.time)

    def _update_rate(self, slot: _Slot, hb: Heartbeat) -> None:
        handled = slot.totals()[1]
        mark = slot.rate_mark
        if mark is None:
            slot.rate_mark = (hb.time, handled)
            return
        dt = hb.time - mark[0]
        if dt >= 0.9:
            current = max(0.0, (handled - mark[1]) / dt)
            slot.rate = current if slot.rate == 0.0 else 0.5 * slot.rate + 0.5 * current
            slot.rate_mark = (hb.time, handled)

    def _update_history(self) -> None:
        now = time.monotonic()
        if now - self._last_history < 1.0:
            return
        self._last_history = now
        for pool in self._pools.values():
            for slot in pool.slots.values():
                if slot.process is None or (slot.hb and time.time() - slot.hb.time > 2.5):
                    slot.rate = 0.0
            pool.history.append(sum(s.rate for s in pool.slots.values()))

    def _on_exit(self, slot: _Slot) -> None:
        proc = slot.process
        self._unwatch(proc.sentinel)
        proc.join(0.5)
        code = proc.exitcode
        proc.close() if code is not None else None
        slot.process = None
        if slot.conn is not None:
            self._unwatch(slot.conn)
            slot.conn.close()
            slot.conn = None
        slot.fold()
        slot.last_exit = code
        slot.drain_since = None
        slot.rate = 0.0
        slot.rate_mark = None
        pool = self._pools[slot.route]
        if slot.releasing:
            slot.releasing = False
            return
        if slot.retiring:
            self._remove_slot(pool, slot, f"drained and removed (exit {code})")
            return
        if self._stopping:
            slot.state, slot.reason = WorkerState.STOPPED, f"exit {code}"
            return
        if slot.restarting and code == 0:
            slot.restarting = False
            slot.state, slot.reason = WorkerState.STARTING, "restarting"
            slot.next_start = 0.0
            return
        slot.restarting = False
        if code == EXIT_FAILED:
            slot.state = WorkerState.FAILED
            slot.reason = slot.reason or "the handler could not be loaded"
            return
        self._on_crash(slot, code)

    def _on_crash(self, slot: _Slot, code: int | None) -> None:
        now = time.monotonic()
        slot.restarts += 1
        slot.crashes.append(now)
        recent = sum(1 for t in slot.crashes if now - t <= CRASH_WINDOW)
        why = slot.kill_reason or (f"killed by signal {-code}" if code is not None and code < 0
                                   else f"exited with status {code}")
        slot.kill_reason = ""
        mid = slot.current_mid.value
        if mid:
            slot.current_mid.value = 0
            count = slot.poison_counts.get(mid, 0) + 1
            slot.poison_counts = {mid: count}  # "in a row": another message resets the count
            if count >= self.config.fleet.poison_crashes and mid not in slot.poison:
                slot.poison.add(mid)
                self._event("ERROR", slot.id, f"message mid {mid} crashed the worker {count} times in a row; "
                                              f"it will be sent to the dead-letter topic")
        tail = self._stderr_tail(slot)
        if recent >= CRASHLOOP_AFTER:
            slot.state = WorkerState.CRASHLOOP
            slot.reason = f"{why}; {recent} crashes in {CRASH_WINDOW:.0f}s" + (f": {tail}" if tail else "")
            self._event("ERROR", slot.id, f"crash loop: {slot.reason}; not restarting (press r to retry)")
            self._spawn(slot, release=True)
            return
        delay = min(MAX_BACKOFF, 0.25 * 2 ** (recent - 1))
        slot.next_start = now + delay
        slot.state = WorkerState.BACKOFF
        slot.reason = f"{why}; restart in {delay:.2g}s"
        self._event("WARNING", slot.id, f"{why}" + (f" ({tail})" if tail else "") + f"; restarting in {delay:.2g}s")

    def _stderr_tail(self, slot: _Slot) -> str:
        if self._runtime is None:
            return ""
        try:
            text = (self._runtime / "workers" / f"{slot.route}-{slot.index}.log").read_text(errors="replace")
        except OSError:
            return ""
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return lines[-1].strip()[:200] if lines else ""

    def _check_hung(self) -> None:
        now = time.monotonic()
        wall = time.time()
        limit = self.config.fleet.hang_timeout
        drain_limit = self.config.fleet.drain_timeout + 5.0
        for slot in self._all_slots():
            if slot.process is None or slot.pid is None:
                continue
            if slot.drain_since is not None:
                if now - slot.drain_since > drain_limit + 3.0:
                    self._signal(slot, signal.SIGKILL)
                elif now - slot.drain_since > drain_limit:
                    self._signal(slot, signal.SIGTERM)
                continue
            if slot.releasing:
                if now - slot.last_beat > 15:
                    self._signal(slot, signal.SIGKILL)
                continue
            silent = now - slot.last_beat
            busy = (wall - slot.hb.busy_since) if slot.hb and slot.hb.busy_since else 0.0
            if silent > limit or busy > limit:
                slot.kill_reason = (f"hung: no heartbeat for {silent:.0f}s" if silent > limit
                                    else f"hung: one message has been in the handler for {busy:.0f}s")
                slot.state, slot.reason = WorkerState.HUNG, slot.kill_reason
                self._event("ERROR", slot.id, f"{slot.kill_reason}; killing pid {slot.pid}")
                self._signal(slot, signal.SIGKILL)
                slot.last_beat = now  # one kill per hang

    def _signal(self, slot: _Slot, sig: int) -> None:
        try:
            os.kill(slot.pid, sig)
        except (ProcessLookupError, TypeError):
            pass

    def _check_broker(self) -> None:
        if self._broker is None:
            self._external_broker_state()
            return
        if self._stopping or self._broker.running():
            return
        now = time.monotonic()
        if now < self._broker_retry_at:
            return
        if self._broker_state is BrokerState.UP:
            self._event("ERROR", "broker", f"the embedded Mosquitto exited; restarting it on {self.host}:{self.port} "
                                           f"(messages not yet saved to disk are lost). Last log: "
                                           f"{self._broker.log_tail(1)}")
        self._broker_state = BrokerState.RESTARTING
        try:
            self._broker.restart()
        except BrokerError as exc:
            self._broker_state, self._broker_reason = BrokerState.DOWN, str(exc)
            self._broker_retry_at = now + min(30.0, 2.0 * max(1, self._broker.restarts))
            self._event("ERROR", "broker", f"restart failed: {exc}")
            return
        self._broker_state, self._broker_reason = BrokerState.UP, ""
        self._event("INFO", "broker", f"embedded Mosquitto restarted (pid {self._broker.pid})")

    def _external_broker_state(self) -> None:
        if self._broker_state is BrokerState.AUTH_FAILED:
            return
        beats = [s.hb for s in self._all_slots() if s.process is not None and s.hb is not None]
        if not beats:
            return
        up = any(hb.connected for hb in beats)
        state = BrokerState.UP if up else BrokerState.DOWN
        if state != self._broker_state:
            if state is BrokerState.DOWN:
                self._event("ERROR", "broker", f"no worker is connected to {self.host}:{self.port}")
            self._broker_state = state

    def _reconcile(self) -> None:
        if self._stopping:
            return
        now = time.monotonic()
        for pool in self._pools.values():
            active = [s for s in pool.slots.values() if not s.retiring]
            while len(active) < pool.desired:
                index = next(i for i in range(len(pool.slots) + 1) if i not in pool.slots)
                slot = self._new_slot(pool, index)
                active.append(slot)
            if len(active) > pool.desired:
                for slot in sorted(active, key=lambda s: s.index, reverse=True)[:len(active) - pool.desired]:
                    self._retire(pool, slot)
            for slot in pool.slots.values():
                if (slot.process is None and not slot.retiring
                        and slot.state not in (WorkerState.FAILED, WorkerState.CRASHLOOP)
                        and now >= slot.next_start):
                    self._spawn(slot)

    def _new_slot(self, pool: _Pool, index: int) -> _Slot:
        name = pool.route.name
        slot = _Slot(route=name, index=index, client_id=f"{self.prefix}-{name}-{index}",
                     current_mid=self._ctx.RawValue("i", 0), log_level=self.log_level)
        pool.slots[index] = slot
        return slot

    def _retire(self, pool: _Pool, slot: _Slot) -> None:
        slot.retiring = True
        if slot.process is None or slot.releasing:
            if slot.process is None:
                self._remove_slot(pool, slot, "removed")
            return
        slot.state, slot.reason = WorkerState.DRAINING, "removing: unsubscribed, finishing the backlog"
        slot.drain_since = time.monotonic()
        self._send(slot, Drain(timeout=self.config.fleet.drain_timeout))
        self._event("INFO", "fleet", f"{slot.id}: draining")

    def _remove_slot(self, pool: _Pool, slot: _Slot, what: str) -> None:
        """Forget a slot, keeping its counts in the route's totals."""
        del pool.slots[slot.index]
        received, handled, failed, _, _ = slot.totals()
        pool.base[0] += received
        pool.base[1] += handled
        pool.base[2] += failed
        self._event("INFO", "fleet", f"{slot.id}: {what}")

    def _spawn(self, slot: _Slot, *, release: bool = False) -> None:
        pool = self._pools[slot.route]
        route = pool.route
        b = self.config.broker
        tls = b.tls
        spec = WorkerSpec(
            worker_id=slot.id, route=route.name, slot=slot.index, client_id=slot.client_id, pattern=route.topic,
            subscribe_filter=pool.filter, handler=route.handler, qos=route.qos, root=str(self.config.root),
            broker=BrokerSettings(host=self.host, port=self.port, protocol=b.protocol, username=b.username,
                                  password=b.password, keepalive=b.keepalive,
                                  tls_ca=tls.ca if tls else None, tls_cert=tls.cert if tls else None,
                                  tls_key=tls.key if tls else None, tls_insecure=tls.insecure if tls else False),
            log_level=slot.log_level, heartbeat_interval=self.config.fleet.heartbeat_interval,
            handler_retries=self.config.fleet.handler_retries,
            dead_letter_topic=self.config.fleet.dead_letter_topic, poison_mids=frozenset(slot.poison),
            log_file=str(self._runtime / "workers" / f"{route.name}-{slot.index}.log") if self._runtime else None,
            release_only=release)
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=worker_mod.run, args=(spec, child, slot.current_mid),
                                 name=f"rmqtui-worker-{slot.id}")
        try:
            proc.start()
        except Exception as exc:  # noqa: BLE001 - the slot backs off; the engine loop goes on
            parent.close()
            child.close()
            slot.next_start = time.monotonic() + 2.0
            slot.state, slot.reason = WorkerState.BACKOFF, f"could not start a process: {exc}"
            self._event("ERROR", slot.id, slot.reason)
            return
        child.close()
        slot.process, slot.conn = proc, parent
        self._watch(proc.sentinel, slot, "exit")
        self._watch(parent, slot, "msg")
        slot.releasing = release
        slot.started = time.time()
        slot.last_beat = time.monotonic()
        slot.hb = None
        if not release:
            slot.state, slot.reason = WorkerState.STARTING, ""

    def _send(self, slot: _Slot, msg: Any) -> None:
        if slot.conn is None:
            return
        try:
            slot.conn.send(msg)
        except (OSError, EOFError):
            pass

    # ------------------------------------------------------------ helpers
    def _all_slots(self):
        for pool in self._pools.values():
            yield from list(pool.slots.values())

    def _find(self, worker: str) -> _Slot | None:
        route, _, index = worker.rpartition("/")
        pool = self._pools.get(route)
        if pool is None or not index.isdigit():
            return None
        return pool.slots.get(int(index))

    def _live_pids(self) -> list[int]:
        with self._lock:
            return [s.pid for s in self._all_slots() if s.pid is not None and not s.releasing]

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _event(self, level: str, source: str, message: str, *, when: float | None = None) -> None:
        with self._lock:
            self._seq += 1
            self._logs.append(LogRecord(self._seq, when or time.time(), level, source, message))
