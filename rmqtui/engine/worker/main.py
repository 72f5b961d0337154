"""The worker process: one MQTT connection serving one slot of one route.

Two threads: paho's network thread runs the handler and acknowledges
(:mod:`.dispatch`), as a bare paho subscriber does, so a message costs no hand-over
between threads; the main thread sends heartbeats, obeys the supervisor over the
worker's one pipe and watches the network thread.  While a handler runs, paho
sends no keepalive ping: the hang watchdog ends a stuck handler before the broker
would drop the connection, and a route whose handlers may block longer (or that
sets ``handler_thread``) gets a third thread, the dispatch thread, to which the
network thread only hands each message over.  ``concurrency`` > 1 runs async
handlers on an event loop in that thread.  End of file on the pipe means the
supervisor is gone, and the worker stops keeping its session.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
import uuid
from typing import Any

from ..logfiles import LineCapture, RateGate, dropped_message, open_private, rotate
from ..protocol import EXIT_FAILED, EXIT_NETWORK, Drain, Heartbeat, LogLine, SetLogLevel, Status, WorkerSpec
from ..textsafe import shorten
from . import lifeline
from .client import Connection, WaitOnNetworkThread, filter_problem
from .dispatch import AsyncPump, Dispatcher

log = logging.getLogger("rmqtui.worker")

_STOP = None  # sentinel on the dispatch queue


class StartError(Exception):
    """The worker cannot serve; the message is its status reason (one line)."""


#: longest log text a worker sends (the supervisor keeps less); a handler's error may quote a huge payload
LOG_TEXT_LIMIT = 16_000


class PipeLogHandler(logging.Handler):
    """Sends log records to the supervisor over the worker's pipe, at most as fast as ``gate`` lets them."""

    def __init__(self, channel: "Channel", gate: RateGate | None = None) -> None:
        super().__init__()
        self.channel = channel
        self.gate = gate or RateGate()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.gate.take():
            return
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            self.channel.send(LogLine(record.created, record.levelname, shorten(text, LOG_TEXT_LIMIT)))
        except Exception:  # a log record must never take the worker down
            self.handleError(record)


class Channel:
    """The worker's end of its pipe, safe to send on from any thread."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.closed = False

    def send(self, obj: Any) -> None:
        if self.closed:
            return
        with self.lock:
            try:
                self.conn.send(obj)
            except (OSError, EOFError, BrokenPipeError):
                self.closed = True

    def status(self, state: str, reason: str = "") -> None:
        self.send(Status(state, reason, time.time()))


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: what fits in a status reason."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_handler(spec: WorkerSpec):
    """Import the route's handler (``module:function``) from the project root."""
    if spec.root not in sys.path:
        sys.path.insert(0, spec.root)
    module_name, _, func_name = spec.handler.partition(":")
    module = importlib.import_module(module_name)
    handler = getattr(module, func_name)
    if not callable(handler):
        raise TypeError(f"{spec.handler} is not callable")
    return handler


class Worker:
    """Connection state, callbacks and the drain of one worker process."""

    def __init__(self, spec: WorkerSpec, channel: Channel, current_mid: Any, handler: Any) -> None:
        self.spec = spec
        self._next_beat = 0.0  # when _beating sends the next heartbeat
        self.channel = channel
        self.conn = Connection(spec)
        client = self.conn.client
        self.dispatcher = Dispatcher(spec, handler, ack=client.ack, publish_dead=self.conn.publish_dead,
                                     outbox=self.conn, current_mid=current_mid)
        self.connected = False
        self.refused = ""
        self.fatal = ""  # a reason to stop serving for good (subscription refused)
        self.subscribed = threading.Event()
        self.unsubscribed = threading.Event()
        self.stop_requested = threading.Event()
        self.draining = False
        self.pump: AsyncPump | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.in_hand = False  # the network thread is inside a handler call (inline mode)
        self.stopping = False  # stop_requested as a plain flag, for the per-message check
        self.handle = self.dispatcher.handle
        self.inline = not spec.handler_thread
        if spec.concurrency > 1 and self.dispatcher.is_async:
            self.pump = AsyncPump(self.dispatcher, spec.concurrency)
            self.loop = asyncio.new_event_loop()
            self.on_message = self._on_message_pumped
            self.inline = False
        elif spec.concurrency > 1:
            log.warning("concurrency %d needs an async def handler; %s is not, so it runs one message at a time",
                        spec.concurrency, spec.handler)
        for name in ("on_connect", "on_disconnect", "on_subscribe", "on_unsubscribe", "on_message", "on_publish"):
            setattr(client, name, self.conn.guard(getattr(self, name)))
        if self.inline:  # guarded inside: one call less per message
            client.on_message = self._on_message_inline
            self.dispatcher.defer = True
        self.dispatch_thread = None if self.inline else \
            threading.Thread(target=self._dispatch, name="rmqtui-dispatch", daemon=True)

    # -- paho's network thread ------------------------------------------------
    def on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            text = str(reason_code)
            if text != self.refused:  # once per reason, not once per retry
                self.refused = text
                client.reconnect_delay_set(min_delay=2, max_delay=10)  # a refusal is not over in 0.1 s
                self.channel.status("failed" if reason_code.value in (0x86, 0x87, 4, 5) else "disconnected",
                                    f"broker refused the connection: {text}")
                log.error("broker refused the connection: %s (retrying every few seconds)", text)
            return
        if self.refused:
            self.refused = ""
            client.reconnect_delay_set(min_delay=0.1, max_delay=5)
        self.connected = True
        if self.draining:
            return
        self.channel.status("connecting", "connected, subscribing")
        client.subscribe([(self.spec.subscribe_filter, self.spec.qos), (self.spec.marker_topic, 1)])
        log.debug("connected (session present: %s), subscribing to %s", flags.session_present,
                  self.spec.subscribe_filter)

    def on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected
        self.connected = False
        self.subscribed.clear()
        if was and not self.stop_requested.is_set():
            self.channel.status("disconnected", f"lost the broker: {reason_code}")
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            self.fatal = f"the broker refused the subscription to {self.spec.subscribe_filter}: {bad[0]}"
            return
        self.subscribed.set()
        self.channel.status("subscribed", "")

    def on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.unsubscribed.set()

    def on_message(self, client, userdata, msg) -> None:
        self.inbox.put(msg)

    def _on_message_inline(self, client, userdata, msg) -> None:
        if not self.inline:
            self.inbox.put(msg)
            return
        self.in_hand = True  # before the check: _finish_dispatch sets the flag, then waits for this one
        try:
            if not self.stopping:
                self.handle(msg)
            # else: not acknowledged, the kept session redelivers it to the slot's next process
        except WaitOnNetworkThread:
            self._move_to_thread(msg)
        except BaseException as exc:
            self.conn.note_failure(exc, "on_message")
            raise
        finally:
            self.in_hand = False

    def _move_to_thread(self, msg: Any) -> None:
        """The handler waited for its own publish on the network thread: from now on it runs on a
        dispatch thread, starting with this message again (not acknowledged yet, so nothing is lost;
        what the handler published before waiting goes out twice, as after a crash)."""
        d = self.dispatcher
        d.busy_since = None
        d.received -= 1  # counted again when the dispatch thread takes it
        if msg.dup:
            d.redelivered -= 1
        msg.dup = True  # the handler sees it a second time: ``redelivered`` says so
        self.inline = False
        d.defer = False
        self.dispatch_thread = threading.Thread(target=self._dispatch, name="rmqtui-dispatch", daemon=True)
        self.dispatch_thread.start()
        self.inbox.put(msg)
        log.info("handler %s waits for its own publishes, so it now runs on a thread of its own (this message "
                 "runs again there); set handler_thread = true on route %s to start that way",
                 self.spec.handler, self.spec.route)

    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if self.dispatcher.held:  # a handler's publish is acknowledged: maybe its request can be too
            self.dispatcher.release_held(mid)

    def _on_message_pumped(self, client, userdata, msg) -> None:
        self.loop.call_soon_threadsafe(self.pump.arrive, msg)

    # -- the dispatch thread --------------------------------------------------
    def _dispatch(self) -> None:
        if self.pump is not None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_forever()
            return
        get = self.inbox.get
        handle = self.dispatcher.handle
        while not self.stop_requested.is_set():
            msg = get()
            if msg is _STOP:
                return
            handle(msg)

    def start(self) -> None:
        """Start dispatching and connect."""
        if self.dispatch_thread is not None:
            self.dispatch_thread.start()
        self.conn.start()

    def _finish_dispatch(self, timeout: float) -> bool:
        """Stop handing messages to the handler after the one(s) in hand; True when they finished."""
        self.stop_requested.set()
        self.stopping = True
        if self.dispatch_thread is None:  # the message in hand, then the acknowledgements held for its publishes
            return self._beating(lambda: not self.in_hand and not self.dispatcher.held, time.monotonic() + timeout)
        if self.pump is not None:
            future = asyncio.run_coroutine_threadsafe(self.pump.finish(), self.loop)
            try:
                future.result(timeout)
            except Exception:  # noqa: BLE001 - a timeout: the handler is stuck, the session keeps its message
                return False
            self.loop.call_soon_threadsafe(self.loop.stop)
        else:
            self.inbox.put(_STOP)
        self._beating(lambda: not self.dispatch_thread.is_alive(), time.monotonic() + timeout)
        return not self.dispatch_thread.is_alive()

    def _beating(self, done, deadline: float) -> bool:
        """Wait until ``done()`` or ``deadline``, sending heartbeats meanwhile: the counters of a draining
        worker keep moving in every front end instead of freezing for up to the drain timeout."""
        while not done():
            now = time.monotonic()
            if now >= deadline:
                return False
            if now >= self._next_beat:
                self.heartbeat()
            time.sleep(min(0.01, deadline - now))
        return True

    # -- the main thread ------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Handler calls under way."""
        if self.pump is not None:
            return self.pump.in_flight
        return 1 if self.dispatcher.busy_since else 0

    def beat_state(self) -> tuple:
        """What a heartbeat reports, without the time: equal tuples = nothing to tell the supervisor."""
        d = self.dispatcher
        busy = self.pump.oldest_start() if self.pump is not None else d.busy_since
        return (d.received, d.handled, d.failed, d.dead_lettered, busy, self.connected, self.conn.published,
                self.in_flight, d.skipped)

    def heartbeat(self) -> None:
        self._next_beat = time.monotonic() + self.spec.heartbeat_interval
        d = self.dispatcher
        busy = self.pump.oldest_start() if self.pump is not None else d.busy_since
        self.channel.send(Heartbeat(time.time(), d.received, d.handled, d.failed, d.dead_lettered,
                                    d.handler_seconds, busy, self.connected, self.conn.published,
                                    self.in_flight, d.skipped, redelivered=d.redelivered, poisoned=d.poisoned,
                                    durations=tuple(d.durations)))

    def set_level(self, level: str) -> None:
        logging.getLogger().setLevel(level)
        self.dispatcher.debug = level == "DEBUG"
        log.info("log level is now %s", level)

    def drain(self, cmd: Drain) -> None:
        """Stop: keep the session (``keep_session``) or leave the group without losing anything."""
        if cmd.keep_session or not self.connected:
            finished = self._finish_dispatch(cmd.timeout)
            log.info("stopping%s; the session is kept for the slot's next process%s",
                     "" if self.connected else " before the broker connection was up",
                     "" if finished else " (the handler did not return: its message will be redelivered)")
            self.conn.stop(end_session=False)
            return
        self.draining = True
        self.channel.status("draining", "unsubscribing and finishing the backlog")
        deadline = time.monotonic() + cmd.timeout
        client = self.conn.client
        self.unsubscribed.clear()
        client.unsubscribe(self.spec.subscribe_filter)
        ok = self._beating(self.unsubscribed.is_set, max(deadline, time.monotonic() + 0.1))
        if ok:
            d = self.dispatcher
            d.marker_seen.clear()
            d.marker_nonce = f"drain {uuid.uuid4().hex}".encode()
            client.publish(self.spec.marker_topic, d.marker_nonce, qos=1)
            ok = self._beating(d.marker_seen.is_set, max(deadline, time.monotonic() + 0.1))
        finished = self._finish_dispatch(max(0.1, deadline - time.monotonic()))
        if ok and finished:
            log.info("drained: backlog handled, ending the session")
            self.conn.stop(end_session=True)
        else:
            log.warning("drain timed out after %.1fs; keeping the session so nothing is lost", cmd.timeout)
            self.conn.stop(end_session=False)


_gate = RateGate()  # this worker's records to the supervisor, whatever their level or origin
_captures: list[LineCapture] = []


def _setup_process(spec: WorkerSpec, channel: Channel) -> None:
    os.setsid()  # the terminal's signals go to the supervisor, which drains us in order
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    root = logging.getLogger()
    root.handlers[:] = [PipeLogHandler(channel, _gate)]
    root.setLevel(spec.log_level)
    _set_title(spec)
    if spec.log_file:
        try:
            fd = open_private(spec.log_file)
        except OSError as exc:
            raise StartError(f"cannot open the worker log file {spec.log_file}: {first_line(exc)}") from exc
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    _capture_output(spec.log_file, channel)


def _capture_output(path: str | None, channel: Channel) -> None:
    """Make each line the handler prints (stdout) or writes to stderr a log record, and keep it in the slot's file.

    fd 1 and 2 stay on the slot's file: C-level writes and the interpreter's last traceback land there,
    and the supervisor reads its last line as the exit reason.  Python-level writes reach that file at
    once (nothing is buffered) and, per complete line, the supervisor as ``stdout: ...`` (INFO) or
    ``stderr: ...`` (WARNING), through the same rate gate as every other record.
    """
    rotating = threading.Lock()

    def emit(level: str, name: str, text: str) -> None:
        if logging.getLogger().isEnabledFor(logging.getLevelName(level)) and _gate.take():
            channel.send(LogLine(time.time(), level, f"{name}: {text}"))

    def on_big() -> None:  # the slot's file passed its cap: rotate it and point fd 1 and 2 at a new one
        if path is None or not rotating.acquire(blocking=False):
            return
        try:
            rotate(path)
            fd = open_private(path)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        except OSError:
            pass
        finally:
            rotating.release()

    _captures[:] = [LineCapture("stdout", "INFO", 1, emit, on_big=on_big),
                    LineCapture("stderr", "WARNING", 2, emit, on_big=on_big)]
    sys.stdout, sys.stderr = _captures


def _end_output(channel: Channel) -> None:
    """At exit: send a held partial line and say how many records the rate gate dropped."""
    for capture in _captures:
        capture.close_line()
    _report_drops(channel, force=True)


def _report_drops(channel: Channel, force: bool = False) -> None:
    n = _gate.due_report(force)
    if n:
        channel.send(LogLine(time.time(), "WARNING", dropped_message(n)))


def _set_title(spec: WorkerSpec) -> None:
    try:
        import setproctitle
    except ImportError:  # optional at run time: ps shows the Python command line instead
        return
    kind = " (rescue)" if spec.release_only else ""
    setproctitle.setproctitle(f"rmqtui: worker {spec.route}/{spec.slot}{kind}")


def _expected_parent() -> int | None:
    if lifeline.fork_server_pid is not None:
        return lifeline.fork_server_pid
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else None


def run(spec: WorkerSpec, conn: Any, current_mid: Any) -> None:
    """Entry point of a worker process (called by multiprocessing)."""
    lifeline.arm(_expected_parent())
    channel = Channel(conn)
    stop_signal = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_signal.set())
    try:
        _run(spec, conn, current_mid, channel, stop_signal)
    finally:
        _end_output(channel)


def _run(spec: WorkerSpec, conn: Any, current_mid: Any, channel: Channel, stop_signal: threading.Event) -> None:
    try:
        _setup_process(spec, channel)
        problem = filter_problem(spec.subscribe_filter)
        if problem:
            raise StartError(problem)
        if spec.release_only:
            from .rescue import rescue
            sys.exit(rescue(spec, channel))
        try:
            handler = load_handler(spec)
        except BaseException as exc:  # noqa: BLE001 - any import failure fails the slot, with its reason
            log.error("handler %s failed to import\n%s", spec.handler, traceback.format_exc().rstrip())
            raise StartError(f"handler {spec.handler} failed to import: {first_line(exc)}") from exc
        worker = Worker(spec, channel, current_mid, handler)
        channel.status("starting", "connecting to the broker")
        worker.start()
    except StartError as exc:
        _fail(channel, str(exc))
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the slot says why instead of dying with a traceback
        _fail(channel, f"the worker could not start: {first_line(exc)}", traceback.format_exc())
    sys.exit(_serve(worker, conn, stop_signal))


def _fail(channel: Channel, reason: str, detail: str = "") -> None:
    log.error("%s%s", reason, f"\n{detail.rstrip()}" if detail else "")
    print(reason, file=sys.__stderr__, flush=True)  # the file's last line (the exit reason), not a second record
    channel.status("failed", reason)
    sys.exit(EXIT_FAILED)


def _serve(worker: Worker, conn: Any, stop_signal: threading.Event) -> int:
    interval = worker.spec.heartbeat_interval
    idle = interval if worker.spec.release_only else max(interval, worker.spec.idle_heartbeat_interval)
    next_beat = next_idle_beat = 0.0
    last_state: tuple = ()
    changed = True
    while True:
        if stop_signal.is_set():
            worker.drain(Drain(keep_session=True))
            break
        broken = worker.conn.network_failure()
        if broken:
            reason = f"the MQTT network thread died: {broken}"
            log.error("%s; exiting so the slot restarts", reason)
            print(reason, file=sys.__stderr__, flush=True)
            worker.channel.status("disconnected", reason)
            return EXIT_NETWORK
        if worker.fatal:
            worker.conn.stop(end_session=False)
            _fail(worker.channel, worker.fatal)
        _report_drops(worker.channel)
        now = time.monotonic()
        if now >= next_beat:
            # beat every interval while something changes (and once more so rates fall to 0), else only
            # every idle interval: 100 idle workers cost the supervisor far fewer wake-ups
            state = worker.beat_state()
            if state != last_state or changed or now >= next_idle_beat:
                worker.heartbeat()
                next_idle_beat = now + idle
                changed = state != last_state
                last_state = state
            next_beat = now + interval
        try:
            ready = conn.poll(min(interval, 0.25))
            cmd = conn.recv() if ready else None
        except (EOFError, OSError):
            # the supervisor is gone: stop now, keeping the session for the next fleet
            worker.drain(Drain(keep_session=True))
            break
        if isinstance(cmd, SetLogLevel):
            worker.set_level(cmd.level)
        elif isinstance(cmd, Drain):
            worker.drain(cmd)
            worker.heartbeat()
            break
    worker.channel.status("stopped", "")
    return 0
