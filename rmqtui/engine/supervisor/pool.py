"""A route's pool of slots: a desired count, and one reconcile step that makes reality match it.

A desired count of 0 pauses the route: its slots stay, their processes stop keeping their sessions
(the broker queues for them) and scaling up again resumes the same slots first."""

from __future__ import annotations

from ..config import RouteConfig
from .policy import RestartPolicy
from .rates import RouteHistory
from .slot import Effect, Phase, Slot


class Pool:
    """The slots of one route.  ``reconcile(now)`` adds, retires and starts slots; it reads no clock."""

    def __init__(self, route: RouteConfig, subscribe_filter: str, client_prefix: str) -> None:
        self.route = route
        self.name = route.name
        self.filter = subscribe_filter
        self.prefix = client_prefix
        self.desired = route.workers
        self.slots: dict[int, Slot] = {}
        self.base = [0, 0, 0]  # received, handled, failed of slots that left the pool
        self.history = RouteHistory()

    def active(self) -> list[Slot]:
        """Slots that are meant to stay (not leaving the pool)."""
        return [s for s in self.slots.values() if not s.retiring]

    def serving_count(self, excluding: Slot | None = None) -> int:
        """Healthy subscribed slots, a crash-looping one not counted."""
        return sum(1 for s in self.slots.values() if s.serving and s is not excluding)

    def new_slot(self, log_level: str) -> Slot:
        """A slot at the lowest free index, with the stable client id of that index."""
        index = next(i for i in range(len(self.slots) + 1) if i not in self.slots)
        slot = Slot(self.name, index, f"{self.prefix}-{self.name}-{index}", log_level)
        self.slots[index] = slot
        return slot

    def pick_retirees(self, count: int) -> list[Slot]:
        """Which ``count`` slots leave: the ones not serving first, then the highest index."""
        return sorted(self.active(), key=lambda s: (s.serving, -s.index))[:count]

    def reconcile(self, now: float, policy: RestartPolicy, log_level: str, *, stopping: bool,
                  forced: bool = False, budget: list[int] | None = None) -> list[Effect]:
        """One step: the pool's slot count towards ``desired``, due slots started, gone ones forgotten.

        ``budget`` ([starts left]) caps the processes this step starts across pools: a 1,000-worker
        start is many short engine steps (heartbeats read, snapshots published) instead of one long one."""
        out: list[Effect] = []
        if not stopping and self.desired == 0:
            for slot in self.active():  # paused: every slot keeps its session, the broker queues for it
                out += slot.pause(now, policy)
        elif not stopping:
            active = self.active()
            for _ in range(self.desired - len(active)):
                self.new_slot(log_level)
            if len(active) > self.desired:  # paused slots are not serving: the highest of them leave first
                for slot in self.pick_retirees(len(active) - self.desired):
                    out += slot.retire(now, policy)
            for slot in self.active():
                out += slot.resume(now)  # the same client ids: the broker delivers what it queued
        for slot in list(self.slots.values()):
            if slot.phase is Phase.WAITING and now >= slot.next_start and not forced:
                if (slot.needs_release or (not stopping and not slot.retiring)) and (budget is None or budget[0] > 0):
                    out += slot.start(now)
                    if budget is not None:
                        budget[0] -= 1
            if slot.phase is Phase.GONE:
                self.forget(slot)
        return out

    def forget(self, slot: Slot) -> None:
        """Drop a slot that left the group, keeping its counts in the route's totals."""
        del self.slots[slot.index]
        received, handled, failed, _, _ = slot.totals()
        self.base[0] += received
        self.base[1] += handled
        self.base[2] += failed

    def totals(self) -> tuple[int, int, int]:
        """received, handled, failed over the route's life."""
        r, h, f = self.base
        for slot in self.slots.values():
            t = slot.totals()
            r, h, f = r + t[0], h + t[1], f + t[2]
        return r, h, f
