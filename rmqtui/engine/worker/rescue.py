"""Release a slot without losing its backlog: the ``release_only`` worker.

Started by the supervisor for a slot whose process is dead or stuck (or
released after a crash loop).  Under the slot's client id it resumes the
session, leaves the share group (UNSUBSCRIBE), republishes every message the
session still holds to its original topic at the same QoS, acknowledging each
one only after the broker acknowledged the copy, finds the end with the
drain-marker round trip, and then ends the session.  The live members of the
group get the copies: nothing the broker acknowledged is stranded.
"""

from __future__ import annotations

import collections
import logging
import queue
import sys
import threading
import time
import uuid

from ..protocol import Heartbeat, WorkerSpec
from ..topics import strip_share
from .client import Connection, republish_properties
from .dispatch import dead_letter_match

log = logging.getLogger("rmqtui.worker")

#: Copies republished but not yet acknowledged by the broker, at most (Mosquitto's default in-flight window is 20).
WINDOW = 16


class RescueError(Exception):
    """The rescue could not finish; the session is kept so a later attempt loses nothing."""


def rescue(spec: WorkerSpec, channel) -> int:
    """Hand the slot's queued messages on and end its session; the process exit status."""
    conn = Connection(spec)
    client = conn.client
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    left = threading.Event()
    marker_ready = threading.Event()
    refused: list[str] = []

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
            return
        c.unsubscribe(spec.subscribe_filter)
        c.subscribe(spec.marker_topic, 1)

    def on_unsubscribe(c, userdata, mid, reason_codes, properties) -> None:
        left.set()

    def on_subscribe(c, userdata, mid, reason_codes, properties) -> None:
        if not any(rc.is_failure for rc in reason_codes):
            marker_ready.set()

    def on_message(c, userdata, msg) -> None:
        inbox.put(msg)

    for name, fn in (("on_connect", on_connect), ("on_unsubscribe", on_unsubscribe),
                     ("on_subscribe", on_subscribe), ("on_message", on_message)):
        setattr(client, name, conn.guard(fn))
    conn.start()
    handed = skipped = 0
    beat = time.monotonic()
    try:
        _wait(conn, refused, lambda: left.is_set() and marker_ready.is_set(), "leave the share group")
        nonce = f"rescue {uuid.uuid4().hex}".encode()
        client.publish(spec.marker_topic, nonce, qos=1)
        dead_prefixes, dead_topic = dead_letter_match(spec.dead_letter_topic, spec.route)
        copies: collections.deque = collections.deque()  # (publish info, original) not yet settled, in order
        while True:
            if copies and inbox.empty():
                handed += _settle(conn, refused, copies, everything=True)
            msg = _next(conn, inbox)
            topic = msg.topic
            if topic == spec.marker_topic:
                handed += _settle(conn, refused, copies, everything=True)
                _ack(client, msg)
                if msg.payload == nonce:
                    break
                continue
            original = strip_share(topic)
            if msg.retain or original.startswith(dead_prefixes) or original == dead_topic:
                skipped += 1  # not work: retained replays and dead letters are never handed on
                _ack(client, msg)
                continue
            info = client.publish(original, msg.payload, qos=msg.qos, properties=republish_properties(msg))
            copies.append((info, msg))
            handed += _settle(conn, refused, copies, everything=False)
            if time.monotonic() - beat > 1.0:  # progress: a long backlog is not a hung release client
                beat = time.monotonic()
                channel.send(Heartbeat(time.time(), 0, 0, 0, 0, 0.0, None, True, 0, 0, skipped, handed))
    except RescueError as exc:
        reason = f"could not release {spec.client_id}: {exc}; its session is kept (nothing lost)"
        log.error("%s", reason)
        print(reason, file=sys.stderr, flush=True)
        conn.stop(end_session=False)
        return 1
    conn.stop(end_session=True)
    log.info("released %s: handed %d queued message%s on to the group%s", spec.client_id, handed,
             "" if handed == 1 else "s", f", skipped {skipped} that were not work" if skipped else "")
    channel.send(Heartbeat(time.time(), 0, 0, 0, 0, 0.0, None, False, 0, 0, skipped, handed))
    return 0


def _settle(conn: Connection, refused: list[str], copies: collections.deque, *, everything: bool) -> int:
    """Acknowledge each original whose copy the broker acknowledged, oldest first; how many were settled.

    Copies are pipelined: up to :data:`WINDOW` wait for their acknowledgement at once, so a backlog moves at
    the broker's pace instead of one round trip per message.  With ``everything`` wait for all of them.
    """
    settled = 0
    while copies and (everything or len(copies) >= WINDOW or conn.delivered(copies[0][0])):
        info, original = copies[0]
        _wait(conn, refused, lambda: conn.delivered(info) or info.rc not in (0, 4), "republish a message")
        if info.rc not in (0, 4):  # 4: NO_CONN, still queued and sent on reconnect
            raise RescueError(f"could not republish to {strip_share(original.topic)}: error {info.rc}")
        _ack(conn.client, original)
        copies.popleft()
        settled += 1
    return settled


def _ack(client, msg) -> None:
    if msg.qos:
        client.ack(msg.mid, msg.qos)


def _wait(conn: Connection, refused: list[str], done, what: str) -> None:
    idle = conn.spec.release_idle_timeout
    deadline = time.monotonic() + idle
    while not done():
        broken = conn.network_failure()
        if broken:
            raise RescueError(f"the MQTT network thread died: {broken}")
        if refused:
            raise RescueError(f"the broker refused the connection: {refused[-1]}")
        if time.monotonic() > deadline:
            raise RescueError(f"timed out after {idle:g}s waiting to {what}")
        time.sleep(0.001)


def _next(conn: Connection, inbox: queue.SimpleQueue):
    idle = conn.spec.release_idle_timeout
    deadline = time.monotonic() + idle
    while True:
        try:
            return inbox.get(timeout=0.1)
        except queue.Empty:
            pass
        broken = conn.network_failure()
        if broken:
            raise RescueError(f"the MQTT network thread died: {broken}")
        if time.monotonic() > deadline:
            raise RescueError(f"no message and no drain marker for {idle:g}s")
