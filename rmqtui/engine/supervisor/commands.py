"""Operator commands, checked and applied to the core: one set of rules for the real and the demo fleet.

Each function validates against the core's state, changes the desired state and
returns the :class:`CommandResult` plus the effects to run (a signal, a message to
a worker).  Spawning and draining follow from the next reconcile.
"""

from __future__ import annotations

import signal

from ..api import LOG_LEVELS, CommandResult
from ..protocol import SetLogLevel
from .core import FleetCore
from .pool import Pool
from .slot import Effect, Phase, Send, Signal

Outcome = tuple[CommandResult, list[Effect]]


def _pool(core: FleetCore, route: str) -> Pool | CommandResult:
    pool = core.pools.get(route)
    return pool if pool is not None else CommandResult.refused(f"no route called '{route}'")


def set_desired(core: FleetCore, pool: Pool, count: int, wall: float) -> CommandResult:
    """Set a pool's desired count, after the checks every front end gets."""
    name = pool.name
    if core.stopping:
        return CommandResult.refused("the fleet is stopping")
    if count < 0:
        return CommandResult.refused("a worker count cannot be negative")
    if count > 1 and not pool.route.shared:
        return CommandResult.refused(
            f"route '{name}' is not shared: a second worker would handle every message twice "
            f"(set shared = true for it in routemq.toml to scale it)")
    before, pool.desired = pool.desired, count
    if count == 0:
        text = f"route '{name}' paused (was {before}): sessions kept, the broker queues for them"
    else:
        text = f"route '{name}': {count} worker{'s' if count != 1 else ''} wanted (was {before})"
        if before == 0:
            text += "; paused sessions resume first"
    core.note("INFO", "fleet", text, wall)
    return CommandResult.accepted(text)


def add_worker(core: FleetCore, route: str, now: float, wall: float) -> Outcome:
    """One more worker on ``route`` (refused on a non-shared route that has one)."""
    pool = _pool(core, route)
    if isinstance(pool, CommandResult):
        return pool, []
    return set_desired(core, pool, pool.desired + 1, wall), []


def scale(core: FleetCore, route: str, count: int, now: float, wall: float) -> Outcome:
    """Set the desired count of ``route``."""
    pool = _pool(core, route)
    if isinstance(pool, CommandResult):
        return pool, []
    return set_desired(core, pool, count, wall), []


def remove_worker(core: FleetCore, route: str, worker: str | None, now: float, wall: float) -> Outcome:
    """One worker fewer: ``worker`` drains (or the reconcile picks one); the last one stays."""
    pool = _pool(core, route)
    if isinstance(pool, CommandResult):
        return pool, []
    if core.stopping:
        return CommandResult.refused("the fleet is stopping"), []
    if pool.desired <= 1:
        return CommandResult.refused(
            f"route '{route}' keeps its last worker: with no member the broker drops its messages "
            f"(to pause the route, scale it to 0: `s` in the TUI or `rmqtui ctl scale {route} 0`)"), []
    if worker is None:
        return set_desired(core, pool, pool.desired - 1, wall), []
    slot = core.find(worker)
    if slot is None or slot.route != route or slot.retiring:
        return CommandResult.refused(f"no active worker '{worker}' on route '{route}'"), []
    pool.desired -= 1
    effects = core.absorb(slot.retire(now, core.policy), wall)
    return CommandResult.accepted(f"draining {worker}; route '{route}' now wants {pool.desired}"), effects


def restart_worker(core: FleetCore, worker: str, now: float, wall: float) -> Outcome:
    """Start the slot anew: a live worker finishes its message and keeps its session; a dead slot retries now."""
    slot = core.find(worker)
    if slot is None or slot.retiring:
        return CommandResult.refused(f"no worker '{worker}'"), []
    if core.stopping:
        return CommandResult.refused("the fleet is stopping"), []
    if slot.phase in (Phase.STOPPING, Phase.DRAINING):
        return CommandResult.refused(f"{worker} is already restarting"), []
    if slot.phase is Phase.RELEASING:
        return CommandResult.refused(f"{worker} is releasing its session; try again in a moment"), []
    effects = core.absorb(slot.restart(now, core.policy), wall)
    core.note("INFO", "fleet", f"{worker}: restart requested", wall)
    return CommandResult.accepted(f"restarting {worker}"), effects


def kill_worker(core: FleetCore, worker: str, now: float, wall: float) -> Outcome:
    """SIGKILL the slot's process; the slot counts it as a kill from outside and restarts at once."""
    slot = core.find(worker)
    pid = slot.worker_pid if slot is not None else None
    if slot is None or pid is None:
        return CommandResult.refused(f"worker '{worker}' has no running process"), []
    slot.kill_reason = "killed by the operator (SIGKILL)"
    core.note("WARNING", "fleet", f"{worker}: sending SIGKILL to pid {pid}", wall)
    return CommandResult.accepted(f"sent SIGKILL to {worker} (pid {pid})"), [Signal(slot.id, pid, signal.SIGKILL)]


def set_log_level(core: FleetCore, level: str, worker: str | None, wall: float) -> Outcome:
    """Set the level of one worker, or of the fleet and every worker."""
    level = level.upper()
    if level not in LOG_LEVELS:
        return CommandResult.refused(f"unknown log level '{level}' (use one of {', '.join(LOG_LEVELS)})"), []
    if worker is None:
        core.log_level = level
        slots = list(core.slots())
    else:
        slot = core.find(worker)
        if slot is None:
            return CommandResult.refused(f"no worker '{worker}'"), []
        slots = [slot]
    effects: list[Effect] = []
    for slot in slots:
        slot.log_level = level
        if slot.worker_pid is not None:
            effects.append(Send(slot.id, SetLogLevel(level)))
    target = worker or "every worker"
    core.note("INFO", "fleet", f"log level of {target} set to {level}", wall)
    return CommandResult.accepted(f"log level of {target}: {level}"), effects
