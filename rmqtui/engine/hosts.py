"""Several hosts in one share group: presence records, and adopting a dead host's sessions.

Each fleet on an external broker keeps one MQTT connection that publishes two
retained records under ``rmqtui/hosts/<group>/<host id>/``:

- ``state``: ``alive`` while the fleet runs; the connection's will turns it into
  ``dead`` when the supervisor vanishes without a clean disconnect (SIGKILL, a
  lost machine); a clean stop writes ``stopped`` (sessions kept, host expected back);
- ``slots``: the client id, route and slot of each worker session the host owns.

``adopt`` lets a live fleet take over a dead host's sessions: for each of its
client ids a release client (the same rescue the supervisor uses for released
slots) resumes the session, leaves the share group, hands what the session holds
to the live members and ends the session.  A host whose state is ``alive`` is
never adopted: taking its client ids would knock its live workers off.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

from .protocol import BrokerSettings, WorkerSpec

log = logging.getLogger("rmqtui.hosts")

PREFIX = "rmqtui/hosts"


def topic(group: str, host: str, leaf: str) -> str:
    return f"{PREFIX}/{group}/{host}/{leaf}"


class _Background:
    """One MQTT client with its network loop and one thread that calls :meth:`_tick` every ``interval``."""

    name = "rmqtui-hosts"

    def __init__(self, access: BrokerSettings, client_id: str, interval: float) -> None:
        from .broker_sys import address, make_client

        self.interval = interval
        self._address = address(access)
        self.client = make_client(access, client_id, clean=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self):
        self.client.connect_async(*self._address, keepalive=10)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._tick()

    def _tick(self) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _state_of(payload: bytes) -> str | None:
    try:
        return json.loads(payload).get("state")
    except (ValueError, AttributeError):
        return None


class Presence(_Background):
    """This host's records: ``alive`` with its slots while it runs, ``dead`` by will, ``stopped`` on a clean stop.

    A record another client writes over ours while we run (a forged ``dead``, which would invite an
    ``adopt_after`` on another host to take our sessions) is put back to ``alive`` at once: the presence
    client follows its own state topic.  On a broker other users share, restrict ``rmqtui/hosts/#`` with an ACL.
    """

    name = "rmqtui-presence"

    def __init__(self, access: BrokerSettings, group: str, host: str, client_id: str,
                 slots: Callable[[], list[dict]], interval: float = 1.0) -> None:
        super().__init__(access, client_id, interval)
        self.group, self.host = group, host
        self._slots = slots
        self._last: str | None = None  # the slots record last published
        dead = json.dumps({"host": host, "state": "dead", "time": None})
        self.client.will_set(topic(group, host, "state"), dead, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _record(self, state: str) -> str:
        return json.dumps({"host": self.host, "state": state, "time": time.time()})

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.publish(topic(self.group, self.host, "state"), self._record("alive"), qos=1, retain=True)
            client.subscribe(topic(self.group, self.host, "state"), 1)
            self._last = None  # publish the slots again on the new connection

    def _on_message(self, client, userdata, msg) -> None:
        if _state_of(msg.payload) != "alive" and not self._stop.is_set():
            log.warning("presence: someone set host %s to %r while it runs; set it back to alive",
                        self.host, _state_of(msg.payload))
            client.publish(topic(self.group, self.host, "state"), self._record("alive"), qos=1, retain=True)

    def _tick(self) -> None:
        try:
            slots = json.dumps(sorted(self._slots(), key=lambda s: s["client_id"]))
        except Exception:  # noqa: BLE001 - a snapshot hiccup: try again next round
            return
        if slots != self._last and self.client.is_connected():
            self.client.publish(topic(self.group, self.host, "slots"), slots, qos=1, retain=True)
            self._last = slots

    def stop(self) -> None:
        """A clean stop: ``stopped`` (the sessions stay; this host is expected back), then disconnect."""
        self._end()
        if self.client.is_connected():
            self.client.publish(topic(self.group, self.host, "state"), self._record("stopped"), qos=1,
                                retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()


def read_records(access: BrokerSettings, group: str, host: str, client_id: str, leaf: str = "+",
                 timeout: float = 1.0) -> dict[tuple[str, str], object]:
    """The retained records under ``rmqtui/hosts/<group>/<host>/<leaf>`` (``+`` for every host or leaf), as
    ``{(host, leaf): decoded JSON}``; retained records arrive at once, so ``timeout`` only bounds the wait."""
    from .broker_sys import address, make_client

    found: dict[tuple[str, str], object] = {}
    client = make_client(access, client_id, clean=True)

    def on_message(c, userdata, msg) -> None:
        *_, who, what = msg.topic.split("/")
        try:
            found[(who, what)] = json.loads(msg.payload)
        except ValueError:
            pass

    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(topic(group, host, leaf), 1)
    client.connect(*address(access), keepalive=10)
    client.loop_start()
    try:
        time.sleep(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return found


class _Collect:
    """A channel for an in-process release client: keeps its last heartbeat."""

    def __init__(self) -> None:
        self.last = None

    def send(self, obj) -> None:
        if hasattr(obj, "handed_on"):
            self.last = obj


def adopt(access: BrokerSettings, group: str, host: str, me: str, specs: Callable[[dict], WorkerSpec | None],
          *, force: bool = False) -> tuple[bool, str]:
    """Take over ``host``'s sessions; ``(done, message)``.  ``specs`` builds the release spec of one slot
    record (None: this fleet has no such route)."""
    from .worker.rescue import rescue

    if host == me:
        return False, "a fleet cannot adopt its own host id"
    records = read_records(access, group, host, f"{me}-adopt-read")
    found = {"state": records.get((host, "state")), "slots": records.get((host, "slots"))}
    state = (found["state"] or {}).get("state")
    if state is None:
        return False, f"no host {host!r} in group {group!r} on this broker (no presence record)"
    if state == "alive":
        return False, f"host {host!r} is alive (its presence connection is up): adopting would knock its workers off"
    if state == "stopped" and not force:
        return False, (f"host {host!r} stopped cleanly and keeps its sessions for its return; "
                       f"adopt --force to take them anyway")
    if state == "adopted":
        return False, f"host {host!r} was already adopted by {found['state'].get('by')}"
    handed = sessions = 0
    failed: list[str] = []
    for slot in found["slots"] or []:
        spec = specs(slot)
        if spec is None:
            failed.append(f"{slot.get('client_id')} (route {slot.get('route')!r} is not in this config)")
            continue
        channel = _Collect()
        code = rescue(spec, channel)
        if code != 0:
            failed.append(spec.client_id)
            continue
        sessions += 1
        handed += channel.last.handed_on if channel.last is not None else 0
    if failed:
        return False, (f"adopted {sessions} session(s) of {host!r}, handed {handed} message(s) on; not adopted: "
                       f"{', '.join(failed)} (their sessions are kept; run adopt again)")
    _mark_adopted(access, group, host, me)
    log.warning("adopted host %s: %d session(s) ended, %d queued message(s) handed to the live workers",
                host, sessions, handed)
    return True, f"adopted {host}: {sessions} session(s) ended, {handed} queued message(s) handed to the live workers"


def _mark_adopted(access: BrokerSettings, group: str, host: str, me: str) -> None:
    from .broker_sys import address, make_client

    client = make_client(access, f"{me}-adopt-mark", clean=True)
    client.connect(*address(access), keepalive=10)
    client.loop_start()
    try:
        record = json.dumps({"host": host, "state": "adopted", "by": me, "time": time.time()})
        client.publish(topic(group, host, "state"), record, qos=1, retain=True).wait_for_publish(3)
        client.publish(topic(group, host, "slots"), "[]", qos=1, retain=True).wait_for_publish(3)
    finally:
        client.disconnect()
        client.loop_stop()



class AutoAdopt(_Background):
    """Watches the group's hosts and adopts one that has been ``dead`` for ``after`` seconds (``adopt_after``)."""

    name = "rmqtui-auto-adopt"

    def __init__(self, access: BrokerSettings, group: str, me: str, client_id: str, after: float,
                 adopt_host: Callable[[str], tuple[bool, str]], poll: float = 1.0) -> None:
        super().__init__(access, client_id, poll)
        self.after, self.me, self._adopt = after, me, adopt_host
        self.dead_since: dict[str, float] = {}
        self._lock = threading.Lock()
        self.client.on_connect = lambda c, *a: c.subscribe(topic(group, "+", "state"), 1)
        self.client.on_message = self._on_message

    def _on_message(self, client, userdata, msg) -> None:
        host = msg.topic.split("/")[-2]
        with self._lock:
            if _state_of(msg.payload) == "dead" and host != self.me:
                self.dead_since.setdefault(host, time.monotonic())
            else:
                self.dead_since.pop(host, None)

    def _tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [h for h, since in self.dead_since.items() if now - since >= self.after]
        for host in due:
            ok, message = self._adopt(host)
            log.warning("adopt_after: host %s dead for %.0f s: %s", host, self.after, message)
            if ok:
                with self._lock:
                    self.dead_since.pop(host, None)

    def stop(self) -> None:
        self._end()
        self.client.disconnect()
        self.client.loop_stop()
