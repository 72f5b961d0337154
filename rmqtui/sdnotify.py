"""systemd's notify protocol (``Type=notify``) without a dependency: datagrams to ``$NOTIFY_SOCKET``.

:class:`ServiceNotifier` watches a fleet from a thread: ``READY=1`` once every
wanted worker is subscribed, ``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` while
the fleet still answers, ``STOPPING=1`` when the host begins to drain.  Outside
systemd (no ``$NOTIFY_SOCKET``) it does nothing.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from .engine.api import FleetControl
from .engine.snapshot import WorkerState


def notify(message: str, *, address: str | None = None) -> bool:
    """Send one notification (``"READY=1"``, ...) to ``address`` (default ``$NOTIFY_SOCKET``).

    False when not under systemd or the send failed.
    """
    address = os.environ.get("NOTIFY_SOCKET", "") if address is None else address
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
        return True
    except OSError:
        return False


def watchdog_interval(environ: dict | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None without a watchdog."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2e6


class ServiceNotifier:
    """Tells systemd when the fleet is ready, alive and stopping (a no-op outside systemd)."""

    def __init__(self, fleet: FleetControl, *, poll: float = 0.5) -> None:
        self.fleet = fleet
        self.watchdog = watchdog_interval()
        # taken out of the environment (as sd_notify's unset_environment does): the embedded
        # Mosquitto and the workers inherit it otherwise, and Mosquitto would say READY=1 for us
        self.address = os.environ.pop("NOTIFY_SOCKET", "")
        for name in ("WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(name, None)
        self.enabled = bool(self.address)
        self.ready = False
        self._poll = poll
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._said_stopping = False
        self._thread = threading.Thread(target=self._run, name="rmqtui-sdnotify", daemon=True)

    def start(self) -> None:
        """Begin watching (only under systemd)."""
        if self.enabled:
            self._thread.start()

    def stopping(self) -> None:
        """The host is draining the fleet: STOPPING=1 (once), and no more pings."""
        self._halt.set()
        with self._lock:
            said, self._said_stopping = self._said_stopping, True
        if self.enabled and not said:
            notify("STOPPING=1", address=self.address)

    def _run(self) -> None:
        watchdog = self.watchdog
        next_ping = 0.0
        while not self._halt.is_set():
            now = time.monotonic()
            try:
                snap = self.fleet.snapshot()
            except Exception:  # no answer means no watchdog ping, which is the point of a watchdog
                snap = None
            if snap is not None and snap.stopping:  # a drain began (signal, `rmqtui ctl stop`, the TUI)
                self.stopping()
                return
            if snap is not None and not self.ready:
                subscribed = sum(w.state is WorkerState.SUBSCRIBED for w in snap.workers)
                if subscribed >= snap.desired:
                    self.ready = True
                    notify(f"READY=1\nSTATUS=serving: {subscribed} workers subscribed\nMAINPID={os.getpid()}",
                           address=self.address)
                else:
                    notify(f"STATUS=starting: {subscribed}/{snap.desired} workers subscribed", address=self.address)
            if snap is not None and watchdog and now >= next_ping:
                notify("WATCHDOG=1", address=self.address)
                next_ping = now + watchdog
            self._halt.wait(min(self._poll, watchdog or self._poll))
