"""Keeps the embedded Mosquitto running: the only supervisor code that starts or stops it.

Restarts run in the keeper's own thread, never under the engine lock, so a restart that
hangs for seconds never delays a snapshot or a command.  After a failed attempt the next
one waits a real backoff counted from when the attempt *ended*, and the error quotes what
the new process wrote to the log, not the previous process's last words.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from typing import Callable

from ..broker import BrokerError, EmbeddedBroker
from ..protocol import BrokerSettings
from ..snapshot import BrokerState
from .state import read_layout

Report = Callable[..., None]  # report(state, reason, pid=..., restarts=...)
Note = Callable[[str, str], None]  # note(level, message)


def new_log_line(path, offset: int) -> str:
    """The last non-empty line written to ``path`` after byte ``offset``, or ''."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read(65536).decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def log_size(path) -> int:
    """Current size of ``path`` (0 when it does not exist)."""
    try:
        with open(path, "rb") as f:
            return f.seek(0, 2)
    except OSError:
        return 0


class BrokerKeeper:
    """Watches an :class:`EmbeddedBroker` and restarts it with backoff when it exits."""

    def __init__(self, broker: EmbeddedBroker, report: Report, note: Note, *, poll: float = 0.25,
                 base_delay: float = 1.0, max_delay: float = 30.0) -> None:
        self.broker = broker
        self._report = report
        self._note = note
        self.poll = poll
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.failures = 0
        self._retry_at = 0.0
        self._down = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start_broker(self) -> None:
        """Start the broker from the caller's thread (raises :class:`BrokerError`), then watch it."""
        self.broker.start()
        self._report(BrokerState.UP, "", pid=self.broker.pid, restarts=self.broker.restarts)
        self._thread = threading.Thread(target=self._run, name="rmqtui-broker-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, then stop the broker (its data stays on disk)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.broker.stop()
        self._report(BrokerState.STOPPED, "", pid=None)

    def _run(self) -> None:
        while not self._halt.wait(self.poll):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the keeper must survive; report and go on
                self._note("ERROR", f"internal error while keeping the broker: {type(exc).__name__}: {exc}")

    def check(self) -> None:
        """One look at the broker: restart it when it is gone and the backoff has passed."""
        b = self.broker
        if b.running():
            return
        if not self._down:
            self._down = True
            self._note("ERROR", f"the embedded Mosquitto exited; restarting it on {b.host}:{b.port} (messages "
                                f"not yet saved to disk are lost). Last log: {b.log_tail(1) or 'empty'}")
        if time.monotonic() < self._retry_at:
            return
        self._report(BrokerState.RESTARTING, "restarting", pid=None)
        offset = log_size(b.log_path)
        try:
            b.restart()
        except BrokerError as exc:
            self.failures += 1
            delay = min(self.max_delay, self.base_delay * 2 ** (self.failures - 1))
            self._retry_at = time.monotonic() + delay  # from when this attempt ended
            said = new_log_line(b.log_path, offset)
            reason = f"restart failed: {said or exc}"
            self._report(BrokerState.DOWN, reason, pid=None, restarts=b.restarts)
            self._note("ERROR", f"{reason}; next attempt in {delay:.0f}s")
            return
        self.failures = 0
        self._down = False
        self._report(BrokerState.UP, "", pid=b.pid, restarts=b.restarts)
        self._note("INFO", f"embedded Mosquitto restarted (pid {b.pid})")




def restore_subscriptions(access: BrokerSettings, subscriptions: list[tuple[str, str, int]], *,
                          timeout: float = 3.0, session_expiry: int = 7 * 24 * 3600) -> int:
    """Subscribe each stored session to its filter again, right after the embedded broker started.

    Mosquitto (2.0.11 at least) restores a session's queued messages from its persistence file but not
    its ``$share`` subscription, so until the workers reconnect the group has no member and the broker
    drops what arrives.  Each (client id, filter, qos) is connected with its session kept, subscribed and
    disconnected; messages the session delivers meanwhile are never acknowledged, so they stay queued for
    the slot's worker.  Returns how many were restored.
    """
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from ..broker_sys import address, make_client

    v5 = access.protocol == "v5"
    restored = 0
    for client_id, flt, qos in subscriptions:
        client = make_client(access, client_id, clean=False, manual_ack=True)
        done = threading.Event()
        client.on_message = lambda *a: None  # never acknowledged: the slot's worker handles it
        client.on_subscribe = lambda *a: done.set()
        client.on_connect = lambda c, *a, flt=flt, qos=qos: c.subscribe(flt, qos)
        try:
            if v5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = session_expiry  # as the workers ask: a restore must not shorten it
                client.connect(*address(access), clean_start=False, properties=props)
            else:
                client.connect(*address(access))
        except OSError:
            continue
        client.loop_start()
        restored += done.wait(timeout)
        client.disconnect()
        client.loop_stop()
    return restored


def start_embedded(fleet, broker: EmbeddedBroker) -> None:
    """Start ``fleet``'s embedded ``broker``, keep it running with a :class:`BrokerKeeper`, and restore the
    stored sessions' subscriptions when it resumes saved data."""
    if fleet.fresh:
        shutil.rmtree(broker.dir, ignore_errors=True)
        fleet._note("WARNING", "broker", "--fresh: stored sessions and their queued messages discarded")
    resumed = (broker.dir / "mosquitto.db").exists()
    fleet._keeper = BrokerKeeper(broker, fleet._broker_report,
                                lambda level, msg: fleet._note(level, "broker", msg))
    fleet._keeper.start_broker()
    fleet.unix_path = str(broker.unix_socket)
    if broker.listen_tcp:
        fleet.host, fleet.port = broker.host, broker.port
        fleet._tcp_login = (broker.username, broker.password)
    with fleet._lock:
        fleet._core.set_broker(BrokerState.UP, pid=broker.pid, host=fleet.host, port=fleet.port,
                              unix_path=fleet.unix_path, tcp=broker.listen_tcp)
    where = f"socket {fleet.unix_path}" + (f" and {fleet.host}:{fleet.port} (login required)"
                                          if broker.listen_tcp else "")
    fleet._note("INFO", "broker", f"embedded Mosquitto pid {broker.pid} on {where}, data in {broker.dir}")
    if os.geteuid() == 0:
        fleet._note("WARNING", "broker", "running as root: the embedded broker and every worker run as "
                                        "root too; start rmqtui as an ordinary user unless you need root")
    if resumed:
        # every slot the last run had (a paused route's too) and every slot this run wants
        known = read_layout(fleet._state_dir)
        subs = [(f"{fleet.prefix}-{name}-{i}", pool.filter, pool.route.qos)
                for name, pool in fleet._core.pools.items()
                for i in sorted(set(range(pool.desired)) | set(known.get(name, ())))]
        n = restore_subscriptions(fleet.broker_settings(), subs, session_expiry=fleet.config.fleet.session_expiry)
        fleet._note("INFO", "broker", f"stored sessions resumed: {n} of {len(subs)} subscriptions "
                                     f"restored before the workers start")
