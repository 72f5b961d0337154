"""The worker's hot path: from a delivered message to the handler and the acknowledgement.

Nothing here imports paho: the client is reached through the callables a
:class:`Dispatcher` is built with (``ack``, ``publish_dead`` and the outbox lent
to messages), so retries, dead letters, poison messages and counters are
unit-tested without a broker (tests/engine/test_dispatch.py).

Handlers run where the worker puts them (worker/main.py): on paho's network thread
(the default: no hand-over between threads per message) or on a dispatch thread of
their own.  Every delivered message, work or not, is acknowledged in arrival order
(MQTT 3.1.1 section 4.6) and only after its handler finished and the broker
acknowledged the handler's QoS 1/2 publishes: on the dispatch thread
:meth:`Dispatcher.handle` waits for them, on the network thread it holds the
acknowledgement until they arrive.  :class:`AsyncPump` keeps up to ``concurrency``
coroutines in flight while acknowledging strictly in order.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import inspect
import json
import logging
import threading
import time
from typing import Any, Callable

from rmqtui.message import Message

from ..protocol import DURATION_BOUNDS, WorkerSpec
from ..textsafe import shorten
from ..topics import TopicPattern, strip_share

log = logging.getLogger("rmqtui.worker")

_now = time.time  # one lookup less per call on the hot path
_FIRST_BOUND = DURATION_BOUNDS[0]  # most calls end in the first bucket: no bisect for them

#: Bytes of the failed payload a dead letter carries: a dead letter must never outgrow what failed.
DEAD_LETTER_PAYLOAD_CAP = 64 * 1024
DEAD_LETTER_ERROR_CAP = 4096  # characters of the error text (it may quote the payload)


class _Mid:
    """Stands in for the shared ``current_mid`` value when nobody reads it (tests, rescue)."""

    value = 0


def dead_letter_match(template: str, route: str) -> tuple[tuple[str, ...], str]:
    """``(prefixes, exact)``: a topic starting with a prefix, or equal to ``exact``, is a dead letter.

    ``rmqtui/dead/{route}`` gives the prefix ``rmqtui/dead/`` (every route's dead letters); a
    template whose fixed part is not a whole level only protects this route's own topic.
    """
    if not template:
        return (), ""
    exact = template.format(route=route)
    head = template.split("{route}", 1)[0] if "{route}" in template else ""
    return ((head,) if head.endswith("/") else ()), exact


def could_receive(topic_filter: str, template: str) -> bool:
    """Whether ``topic_filter`` (``$share/`` prefix removed) can match a dead-letter topic of ``template``.

    The ``{route}`` level stands for any levels, so the answer errs on "yes"; a
    "no" lets the hot path skip the dead-letter check altogether.
    """
    if not template:
        return False
    f_levels = strip_share(topic_filter).split("/")
    t_levels = template.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels):
            return False
        if "{route}" in t_levels[i]:
            return True
        if level != "+" and level != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


def dead_letter_record(route: str, worker: str, topic: str, payload: bytes, error: str, attempts: int) -> str:
    """The JSON body of a dead letter (payload capped, text when it decodes, else hex)."""
    clipped = payload[:DEAD_LETTER_PAYLOAD_CAP]
    try:
        body: Any = clipped.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        body, encoding = clipped.hex(), "hex"
    record = {"route": route, "topic": topic, "payload": body, "encoding": encoding,
              "error": shorten(error, DEAD_LETTER_ERROR_CAP),
              "attempts": attempts, "worker": worker, "time": time.time()}
    if len(payload) > len(clipped):
        record["truncated_from"] = len(payload)
    return json.dumps(record)


class Dispatcher:
    """Turns delivered messages into handler calls, retries, dead letters and acknowledgements."""

    def __init__(self, spec: WorkerSpec, handler: Callable[[Message], Any], *,
                 ack: Callable[[int, int], Any], publish_dead: Callable[[str, str], Any],
                 outbox: Any = None, current_mid: Any = None) -> None:
        self.spec = spec
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.ack = ack
        self.publish_dead = publish_dead
        self.outbox = outbox
        self.current_mid = current_mid if current_mid is not None else _Mid()
        self.pattern = TopicPattern.parse(spec.pattern)
        self.message_type = Message.bound_to(outbox, self.pattern)
        self.route = spec.route
        self.marker = spec.marker_topic
        self.marker_nonce: bytes | None = None  # the payload of the drain marker this worker waits for
        self.marker_seen = threading.Event()
        self.dead_prefixes, self.dead_topic = dead_letter_match(spec.dead_letter_topic, spec.route)
        self.guard_dead = could_receive(spec.subscribe_filter, spec.dead_letter_topic)
        self.poison_mids = spec.poison_mids
        self.debug = spec.log_level == "DEBUG"
        self.received = 0
        self.redelivered = 0  # delivered with the DUP flag: the broker had sent them before (a redelivery)
        self.poisoned = 0  # dead-lettered because they crashed the process repeatedly (the rest: handler errors)
        self.durations = [0] * (len(DURATION_BOUNDS) + 1)  # handler calls per duration bucket; the last: longer
        self.handled = 0
        self.failed = 0
        self.dead_lettered = 0
        self.skipped = 0  # dead letters delivered to this route: acknowledged, never handled
        self.handler_seconds = 0.0
        self.busy_since: float | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # handle() runs on paho's network thread: never wait there for the handler's publishes; hold the
        # acknowledgement instead (in arrival order) until the broker acknowledged them
        self.defer = False
        self.held: collections.deque[tuple] = collections.deque()  # (mid, qos, publishes, marker payload)
        self.held_lock = threading.Lock()

    # -- one at a time --------------------------------------------------------
    def handle(self, msg: Any) -> None:
        """Handle one delivered paho message to the end, acknowledgement included."""
        # The hot path: runs for every message, so it keeps to locals and skips work a sync
        # handler returning None does not need (bench/hotpath.py measures it).
        topic = msg.topic
        qos = msg.qos
        # the common case inline (a call costs a tenth of the path); the rest goes through admit()
        if topic == self.marker or msg.retain or msg.dup or self.guard_dead or topic[:7] == "$share/":
            message = self.admit(msg)
            if message is None:
                marker = msg.payload if topic == self.marker else None
                if self.held:
                    self._hold(msg.mid, qos, None, marker)
                    return
                if qos:
                    self.ack(msg.mid, qos)
                if marker is not None:
                    self.marker_reached(marker)
                return
        else:
            self.received += 1  # (not a redelivery: msg.dup went through admit())
            if qos:
                self.current_mid.value = msg.mid
            message = self.message_type(topic, None, msg.payload, qos, False, self.route, msg.properties)
        started = self.busy_since = _now()
        try:
            result = self.handler(message)
            if result is not None and (self.is_async or inspect.isawaitable(result)):
                self._run_async(result)
            self.handled += 1
        except Exception as exc:
            self._retry(message, exc)
        self.busy_since = None
        elapsed = _now() - started
        self.handler_seconds += elapsed
        self.durations[0 if elapsed <= _FIRST_BOUND else bisect.bisect_left(DURATION_BOUNDS, elapsed)] += 1
        if self.debug:
            log.debug("handled %s params=%s (%d bytes) in %.2f ms%s", message.topic, message.params,
                      len(msg.payload), elapsed * 1000, " [redelivered]" if msg.dup else "")
        if qos:
            self.current_mid.value = 0
        if message._sent or self.held:
            if self.defer or self.held:  # on the network thread: acknowledged once its publishes are
                self._hold(msg.mid, qos, message._sent, None)
                message._sent = None
                return
            self.outbox.settle(message)
        if qos:
            self.ack(msg.mid, qos)

    def _hold(self, mid: int, qos: int, sent: list | None, marker: bytes | None) -> None:
        """Queue an acknowledgement behind older held ones, then send what is settled."""
        with self.held_lock:
            self.held.append((mid, qos, sent, marker))
        self.release_held()

    def release_held(self, acked: int | None = None) -> None:
        """Acknowledge held messages, oldest first, while each one's publishes are acknowledged.

        Called after each message and on each PUBACK of the worker's own publishes (paho's
        ``on_publish``), on the network thread: waiting there would stop the very packets waited for.
        ``acked`` is the mid that PUBACK is for: paho calls ``on_publish`` before it marks that publish
        done, and without it the last request before a quiet spell would stay unacknowledged."""
        held = self.held
        delivered = self.outbox.delivered if self.outbox is not None else None
        with self.held_lock:  # the network thread (on_publish) and, after a move, the dispatch thread
            while held:
                mid, qos, sent, marker = held[0]
                if sent and not all(info.mid == acked or delivered(info) for info in sent):
                    return
                held.popleft()
                if qos:
                    self.ack(mid, qos)
                if marker is not None:
                    self.marker_reached(marker)

    def admit(self, msg: Any) -> Message | None:
        """The :class:`Message` for a work item, or ``None`` for the rest (marker, retained,
        dead letter, poison), which the caller acknowledges in its turn without a handler."""
        topic = msg.topic
        if topic == self.marker:
            return None
        if msg.retain:
            # a retained message replayed at subscribe time would reach every member of the group
            # and be handled N times (Mosquitto 2.0 does this); live traffic never has the flag
            log.debug("skipped retained message on %s (retained messages are not work items)", topic)
            return None
        if topic[:7] == "$share/":
            topic = strip_share(topic)
        if self.guard_dead and (topic.startswith(self.dead_prefixes) or topic == self.dead_topic):
            self.skipped += 1  # a dead letter handled as work would fail again and wrap itself forever
            return None
        self.received += 1
        if msg.dup:
            self.redelivered += 1
        qos = msg.qos
        if qos:
            mid = msg.mid
            self.current_mid.value = mid
            if msg.dup and mid in self.poison_mids:
                self.poisoned += 1
                self._dead_letter(topic, msg.payload, "this message crashed the worker process repeatedly", 0)
                self.current_mid.value = 0
                return None
        return self.message_type(topic, None, msg.payload, qos, msg.dup, self.route, msg.properties)

    def marker_reached(self, payload: bytes) -> None:
        """Called in arrival order once everything delivered before a marker is acknowledged."""
        if self.marker_nonce is not None and payload == self.marker_nonce:
            self.marker_seen.set()

    def _retry(self, message: Message, exc: Exception) -> None:
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
        self.gave_up(message, exc, attempts)

    def gave_up(self, message: Message, exc: BaseException, attempts: int) -> None:
        """Count, log and dead-letter a message whose handler failed ``attempts`` times."""
        self.failed += 1
        where = f"; sent to {self.spec.dead_letter_topic.format(route=self.route)}" if self.dead_topic else \
            "; dropped (dead_letter_topic is empty)"
        log.error("handler %s failed on %s after %d attempts%s", self.spec.handler, message.topic, attempts, where,
                  exc_info=(type(exc), exc, exc.__traceback__))
        self._dead_letter(message.topic, message.payload, f"{type(exc).__name__}: {exc}", attempts)

    def _dead_letter(self, topic: str, payload: bytes, error: str, attempts: int) -> None:
        if not self.dead_topic:
            return  # documented: failed messages are logged and acknowledged, nothing is published
        self.dead_lettered += 1
        self.publish_dead(self.dead_topic, dead_letter_record(self.route, self.spec.worker_id, topic, payload,
                                                              error, attempts))

    def _run_async(self, awaitable: Any) -> None:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(awaitable)


class AsyncPump:
    """Up to ``limit`` coroutine handlers in flight on one event loop, acknowledged in arrival order.

    :meth:`arrive` runs on the loop (the network thread hands messages over with
    ``call_soon_threadsafe``).  A message is acknowledged when it and every
    message delivered before it are finished, so a crash redelivers everything
    not yet finished and nothing is acknowledged ahead of an older message.
    """

    def __init__(self, dispatcher: Dispatcher, limit: int) -> None:
        self.d = dispatcher
        self.limit = max(1, limit)
        self.order: collections.deque[list] = collections.deque()  # [done, mid, qos, started, marker]
        self.waiting: collections.deque[tuple[list, Message]] = collections.deque()
        self.running = 0
        self.stopping = False

    @property
    def in_flight(self) -> int:
        """Handler calls under way."""
        return self.running

    def oldest_start(self) -> float | None:
        """Wall time the oldest running handler call began (for the hang watchdog)."""
        starts = [e[3] for e in self.order if not e[0] and e[3]]
        return min(starts) if starts else None

    def arrive(self, msg: Any) -> None:
        """Take one delivered message (on the loop's thread)."""
        if self.stopping:
            return  # not acknowledged: the kept session redelivers it to the slot's next process
        d = self.d
        message = d.admit(msg)
        entry = [message is None, msg.mid, msg.qos, 0.0, msg.payload if msg.topic == d.marker else None]
        self.order.append(entry)
        if message is None:
            self._flush()
            return
        if self.running < self.limit:
            self._start(entry, message)
        else:
            self.waiting.append((entry, message))
        d.current_mid.value = self.order[0][1] if self.order[0][2] else 0

    def _start(self, entry: list, message: Message) -> None:
        self.running += 1
        entry[3] = time.time()
        asyncio.get_running_loop().create_task(self._call(entry, message))

    async def _call(self, entry: list, message: Message) -> None:
        d = self.d
        attempts = 0
        try:
            while True:
                attempts += 1
                try:
                    await d.handler(message)
                    d.handled += 1
                    break
                except Exception as exc:
                    if attempts > d.spec.handler_retries:
                        d.gave_up(message, exc, attempts)
                        break
            if message._sent:
                await d.outbox.settled(message)
        finally:
            elapsed = time.time() - entry[3]
            d.handler_seconds += elapsed
            d.durations[bisect.bisect_left(DURATION_BOUNDS, elapsed)] += 1
            entry[0] = True
            self.running -= 1
            if self.waiting and not self.stopping:
                self._start(*self.waiting.popleft())
            self._flush()

    def _flush(self) -> None:
        d = self.d
        order = self.order
        while order and order[0][0]:
            _, mid, qos, _, marker = order.popleft()
            if qos:
                d.ack(mid, qos)
            if marker is not None:
                d.marker_reached(marker)
        d.current_mid.value = order[0][1] if order and order[0][2] else 0

    async def finish(self) -> None:
        """Stop taking messages and wait for the calls under way (queued ones stay unacknowledged)."""
        self.stopping = True
        self.waiting.clear()
        while self.running:
            await asyncio.sleep(0.005)
