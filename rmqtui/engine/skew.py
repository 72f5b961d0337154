"""Share skew: how unevenly the broker spreads a route's messages over its workers.

Mosquitto's shared subscriptions go round robin over the group's sessions, offline
ones included, and know nothing of load; so a worker that restarts, or a slow one,
can sit on a share of the messages while the others idle.  The skew of a route is
``max / mean - 1`` of the messages each live worker received between two
snapshots: 0 is a perfect spread, 1 means the busiest worker got twice the mean.
"""

from __future__ import annotations

from .snapshot import FleetSnapshot

MIN_MESSAGES = 20  # fewer between the two snapshots is noise, not skew


def share_skew(old: FleetSnapshot, new: FleetSnapshot, route: str) -> float | None:
    """The skew of ``route`` between two snapshots; None with fewer than two live workers or little traffic."""
    before = {w.id: w.received for w in old.workers_of(route)}
    deltas = [w.received - before[w.id] for w in new.workers_of(route)
              if w.pid is not None and w.id in before and w.received >= before[w.id]]
    if len(deltas) < 2 or sum(deltas) < MIN_MESSAGES:
        return None
    mean = sum(deltas) / len(deltas)
    return max(deltas) / mean - 1.0
