"""A prototype of the proposed supervisor fix, used only to measure its gain (not shipped).

``Fleet._step`` (rmqtui/engine/supervisor.py) rebuilds the list of every worker's pipe and
process sentinel and calls ``multiprocessing.connection.wait`` on it -- which creates a new
selector and registers every fd -- and then runs the O(workers) housekeeping
(``_check_broker``, ``_check_hung``, ``_reconcile``, ``_update_history``) on *every*
wake-up.  Idle workers wake it with every heartbeat (2 per second each), so its cost grows
with workers x heartbeats = O(N^2) per second.

This subclass keeps one epoll selector for the fleet's lifetime (register in ``_spawn``,
unregister on exit or pipe EOF) and runs the housekeeping at most once per ``tick`` (or
right away after a command or a process exit).  A heartbeat then costs O(1).
"""

from __future__ import annotations

import os
import selectors
import time

from rmqtui.engine.supervisor import Fleet


class ProtoFleet(Fleet):
    def start(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, (None, "wake"))
        self._next_house = 0.0
        super().start()

    def _reg(self, obj, data) -> None:
        try:
            self._sel.register(obj, selectors.EVENT_READ, data)
        except (KeyError, ValueError, OSError):
            pass

    def _unreg(self, obj) -> None:
        try:
            self._sel.unregister(obj)
        except (KeyError, ValueError, OSError):
            pass

    # registered by fd number, and unregistered before the fd is closed
    def _spawn(self, slot, *, release: bool = False) -> None:
        super()._spawn(slot, release=release)
        if slot.process is not None:
            self._reg(slot.process.sentinel, (slot, "exit"))
            if slot.conn is not None:
                self._reg(slot.conn.fileno(), (slot, "msg"))

    def _drain_conn(self, slot) -> None:
        fd = slot.conn.fileno()
        super()._drain_conn(slot)
        if slot.conn is None:
            self._unreg(fd)

    def _on_exit(self, slot) -> None:
        self._unreg(slot.process.sentinel)
        if slot.conn is not None:
            self._unreg(slot.conn.fileno())
        super()._on_exit(slot)

    def _step(self) -> None:
        events = self._sel.select(self.tick)
        with self._lock:
            urgent = False
            exits = []
            for key, _ in events:
                slot, kind = key.data
                if kind == "wake":
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                    urgent = True
                elif kind == "msg":
                    if slot.conn is not None:
                        self._drain_conn(slot)
                elif slot.process is not None and key.fd == slot.process.sentinel:
                    exits.append(slot)
            for slot in exits:
                if slot.conn is not None:
                    self._drain_conn(slot)
                self._on_exit(slot)
            now = time.monotonic()
            if urgent or exits or now >= self._next_house:
                self._next_house = now + self.tick
                self._check_broker()
                self._check_hung()
                self._reconcile()
                self._update_history()
            if self._stopping and not any(s.process is not None for s in self._all_slots()):
                self._idle.set()
