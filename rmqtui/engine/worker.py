"""The worker process: one paho-mqtt client serving one slot of one route.

The handler runs inside paho's ``on_message`` on the network thread and the
message is acknowledged only after it returned (``manual_ack``), so a crash
never loses a message the broker handed over.  The main thread sends
heartbeats and obeys the supervisor's commands over the worker's one pipe;
end of file on that pipe means the supervisor is gone, and the worker exits.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rmqtui.message import Message

from .protocol import (EXIT_FAILED, Drain, Heartbeat, LogLine, SetLogLevel, Status, WorkerSpec)
from .topics import TopicPattern, strip_share

SESSION_EXPIRY = 7 * 24 * 3600  # seconds a v5 session outlives its connection

log = logging.getLogger("rmqtui.worker")


class PipeLogHandler(logging.Handler):
    """Sends log records to the supervisor over the worker's pipe."""

    def __init__(self, channel: "Channel") -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            self.channel.send(LogLine(record.created, record.levelname, text))
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


def _load_handler(spec: WorkerSpec):
    if spec.root not in sys.path:
        sys.path.insert(0, spec.root)
    module_name, _, func_name = spec.handler.partition(":")
    module = importlib.import_module(module_name)
    handler = getattr(module, func_name)
    if not callable(handler):
        raise TypeError(f"{spec.handler} is not callable")
    return handler


def _protocol(name: str) -> int:
    return mqtt.MQTTv5 if name == "v5" else mqtt.MQTTv311


class Worker:
    """State and callbacks of one worker process."""

    def __init__(self, spec: WorkerSpec, channel: Channel, current_mid: Any) -> None:
        self.spec = spec
        self.channel = channel
        self.current_mid = current_mid  # shared with the supervisor: the mid being handled, 0 when idle
        self.pattern = TopicPattern.parse(spec.pattern)
        self.marker = spec.marker_topic
        self.route = spec.route
        self.poison_mids = spec.poison_mids
        self.v5 = spec.broker.protocol == "v5"
        self.received = 0
        self.handled = 0
        self.failed = 0
        self.dead_lettered = 0
        self.handler_seconds = 0.0
        self.busy_since: float | None = None
        self.connected = False
        self.refused = ""
        self.subscribed = threading.Event()
        self.unsubscribed = threading.Event()
        self.marker_seen = threading.Event()
        self.stop_requested = threading.Event()
        self.draining = False
        self.debug = spec.log_level == "DEBUG"
        self.handler = None
        self.is_async = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client = self._make_client(clean=False)

    # -- connection -------------------------------------------------------
    def _make_client(self, *, clean: bool) -> mqtt.Client:
        b = self.spec.broker
        kwargs: dict[str, Any] = {}
        if not self.v5:
            kwargs["clean_session"] = clean
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.spec.client_id,
                             protocol=_protocol(b.protocol), manual_ack=True, **kwargs)
        if b.username:
            client.username_pw_set(b.username, b.password or None)
        if b.tls_ca or b.tls_cert:
            client.tls_set(ca_certs=b.tls_ca, certfile=b.tls_cert, keyfile=b.tls_key)
            if b.tls_insecure:
                client.tls_insecure_set(True)
        # reconnect fast: after a broker restart, Mosquitto drops what is published to a persistent
        # session's subscriptions until that client is back
        client.reconnect_delay_set(min_delay=0.1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        return client

    def connect(self) -> None:
        b = self.spec.broker
        kwargs: dict[str, Any] = {}
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY
            kwargs = {"clean_start": False, "properties": props}
        self.client.connect_async(b.host, b.port, keepalive=b.keepalive, **kwargs)
        self.client.loop_start()

    def status(self, state: str, reason: str = "") -> None:
        self.channel.send(Status(state, reason, time.time()))

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            text = str(reason_code)
            if text != self.refused:  # once per reason, not once per retry
                self.refused = text
                client.reconnect_delay_set(min_delay=2, max_delay=10)  # a refusal is not over in 0.1 s
                self.status("failed" if reason_code.value in (0x86, 0x87, 4, 5) else "disconnected",
                            f"broker refused the connection: {text}")
                log.error("broker refused the connection: %s (retrying every few seconds)", text)
            return
        if self.refused:
            self.refused = ""
            client.reconnect_delay_set(min_delay=0.1, max_delay=5)
        self.connected = True
        if self.spec.release_only:
            client.unsubscribe(self.spec.subscribe_filter)
            return
        self.status("connecting", "connected, subscribing")
        if self.draining:
            return
        client.subscribe([(self.spec.subscribe_filter, self.spec.qos), (self.spec.marker_topic, 1)])
        log.debug("connected (session present: %s), subscribing to %s", flags.session_present,
                  self.spec.subscribe_filter)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected
        self.connected = False
        self.subscribed.clear()
        if was and not self.stop_requested.is_set():
            self.status("disconnected", f"lost the broker: {reason_code}")
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            self.status("failed", f"subscription refused: {bad[0]}")
            log.error("the broker refused the subscription to %s: %s", self.spec.subscribe_filter, bad[0])
            return
        self.subscribed.set()
        self.status("subscribed", "")

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.unsubscribed.set()

    # -- the hot path -----------------------------------------------------
    def _on_message(self, client, userdata, msg) -> None:
        # The hot path: runs for every message, so it keeps to locals and skips work a sync
        # handler returning None does not need (bench/hotpath.py measures it).
        topic = msg.topic
        qos = msg.qos
        if topic == self.marker:
            self.marker_seen.set()
            if qos:
                client.ack(msg.mid, qos)
            return
        if msg.retain:
            # a retained message replayed at subscribe time would reach every member of the group
            # and be handled N times (Mosquitto 2.0 does this); live traffic never has the flag
            log.debug("skipped retained message on %s (retained messages are not work items)", topic)
            if qos:
                client.ack(msg.mid, qos)
            return
        self.received += 1
        if topic[:7] == "$share/":
            topic = strip_share(topic)
        mid = msg.mid
        if qos:
            self.current_mid.value = mid
            if msg.dup and mid in self.poison_mids:
                self._dead_letter(topic, msg.payload, "this message crashed the worker process repeatedly", 0)
                self.current_mid.value = 0
                client.ack(mid, qos)
                return
        params = self.pattern.match(topic)
        message = Message(topic, {} if params is None else params, msg.payload, qos, msg.dup, self.route)
        started = self.busy_since = time.time()
        try:
            result = self.handler(message)
            if result is not None and (self.is_async or inspect.isawaitable(result)):
                self._run_async(result)
            self.handled += 1
        except Exception as exc:
            self._handler_failed(message, exc)
        self.busy_since = None
        elapsed = time.time() - started
        self.handler_seconds += elapsed
        if self.debug:
            log.debug("handled %s params=%s (%d bytes) in %.2f ms%s", topic, message.params, len(msg.payload),
                      elapsed * 1000, " [redelivered]" if msg.dup else "")
        if qos:
            self.current_mid.value = 0
            client.ack(mid, qos)

    def _handler_failed(self, message: Message, exc: Exception) -> None:
        """Retry the handler ``handler_retries`` times, then count, log and dead-letter the message."""
        attempts = 1
        while attempts <= self.spec.handler_retries:
            attempts += 1
            try:
                result = self.handler(message)
                if result is not None and (self.is_async or inspect.isawaitable(result)):
                    self._run_async(result)
                self.handled += 1
                return
            except Exception as again:
                exc = again
        self.failed += 1
        log.error("handler %s failed on %s after %d attempts", self.spec.handler, message.topic, attempts,
                  exc_info=(type(exc), exc, exc.__traceback__))
        self._dead_letter(message.topic, message.payload, f"{type(exc).__name__}: {exc}", attempts)

    def _run_async(self, awaitable) -> None:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(awaitable)

    def _dead_letter(self, topic: str, payload: bytes, error: str, attempts: int) -> None:
        self.dead_lettered += 1
        try:
            body: Any = payload.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            body, encoding = payload.hex(), "hex"
        record = {"route": self.spec.route, "topic": topic, "payload": body, "encoding": encoding,
                  "error": error, "attempts": attempts, "worker": self.spec.worker_id, "time": time.time()}
        self.client.publish(self.spec.dead_letter_topic.format(route=self.spec.route), json.dumps(record), qos=1)

    # -- commands ---------------------------------------------------------
    def heartbeat(self) -> None:
        self.channel.send(Heartbeat(time.time(), self.received, self.handled, self.failed, self.dead_lettered,
                                    self.handler_seconds, self.busy_since, self.connected))

    def set_level(self, level: str) -> None:
        logging.getLogger().setLevel(level)
        self.debug = level == "DEBUG"
        log.info("log level is now %s", level)

    def drain(self, cmd: Drain) -> None:
        """Leave the group without losing anything, then end (or keep) the session."""
        self.stop_requested.set()
        if cmd.keep_session or not self.connected:
            log.info("stopping%s; the session is kept for the slot's next process",
                     "" if self.connected else " before the broker connection was up")
            self._disconnect(end_session=False)
            return
        self.draining = True
        self.status("draining", "unsubscribing and finishing the backlog")
        deadline = time.monotonic() + cmd.timeout
        self.unsubscribed.clear()
        self.client.unsubscribe(self.spec.subscribe_filter)
        ok = self.unsubscribed.wait(max(0.1, deadline - time.monotonic()))
        if ok:
            self.marker_seen.clear()
            self.client.publish(self.spec.marker_topic, b"drain", qos=1)
            ok = self.marker_seen.wait(max(0.1, deadline - time.monotonic()))
        if ok:
            log.info("drained: backlog handled, ending the session")
            self._disconnect(end_session=True)
        else:
            log.warning("drain timed out after %.1fs; keeping the session so nothing is lost", cmd.timeout)
            self._disconnect(end_session=False)

    def _disconnect(self, *, end_session: bool) -> None:
        client = self.client
        if self.v5 and end_session:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
            client.disconnect(properties=props)
        else:
            client.disconnect()
        client.loop_stop()
        if end_session and not self.v5:
            self._erase_v311_session()

    def _erase_v311_session(self) -> None:
        """A 3.1.1 session ends only by connecting once with clean_session=True."""
        b = self.spec.broker
        eraser = self._make_client(clean=True)
        eraser.on_connect = eraser.on_disconnect = eraser.on_message = None
        eraser.on_subscribe = eraser.on_unsubscribe = None
        try:
            eraser.connect(b.host, b.port, keepalive=b.keepalive)
            eraser.loop_start()
            deadline = time.monotonic() + 2.0
            while not eraser.is_connected() and time.monotonic() < deadline:
                time.sleep(0.01)
            eraser.disconnect()
            eraser.loop_stop()
        except OSError as exc:
            log.warning("could not end the session of %s: %s", self.spec.client_id, exc)


def _setup_process(spec: WorkerSpec, channel: Channel) -> None:
    os.setsid()  # the terminal's signals go to the supervisor, which drains us in order
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if spec.log_file:
        fd = os.open(spec.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    root = logging.getLogger()
    root.handlers[:] = [PipeLogHandler(channel)]
    root.setLevel(spec.log_level)


def run(spec: WorkerSpec, conn: Any, current_mid: Any) -> None:
    """Entry point of a worker process (called by multiprocessing)."""
    channel = Channel(conn)
    _setup_process(spec, channel)
    worker = Worker(spec, channel, current_mid)
    stop_signal = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_signal.set())
    if spec.release_only:
        sys.exit(_release(worker))
    try:
        worker.handler = _load_handler(spec)
        worker.is_async = inspect.iscoroutinefunction(worker.handler)
    except BaseException as exc:  # noqa: BLE001 - any import failure fails the slot, with its reason
        reason = f"handler {spec.handler} failed to import: {type(exc).__name__}: {exc}"
        log.error("%s\n%s", reason, traceback.format_exc().rstrip())
        worker.status("failed", reason)
        _release(worker)  # stop absorbing this slot's share while nobody serves it
        sys.exit(EXIT_FAILED)
    worker.status("starting", "connecting to the broker")
    worker.connect()
    interval = spec.heartbeat_interval
    next_beat = 0.0
    while True:
        if stop_signal.is_set():
            worker.drain(Drain(keep_session=True))
            break
        now = time.monotonic()
        if now >= next_beat:
            worker.heartbeat()
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
    worker.status("stopped", "")
    sys.exit(0)


def _release(worker: Worker) -> int:
    """Unsubscribe the slot's session so the broker stops queueing its share; keep the session."""
    worker.unsubscribed.clear()
    worker.client.on_connect = lambda c, *a: c.unsubscribe(worker.spec.subscribe_filter)
    # messages the session delivers meanwhile stay unacknowledged: the broker keeps them for the
    # slot's next real worker instead of them being handled by nobody or dead-lettered
    worker.client.on_message = lambda *a: None
    worker.connect()
    released = worker.unsubscribed.wait(5.0)
    worker.client.disconnect()
    worker.client.loop_stop()
    return 0 if released else 1
