"""Compare a re-read config with the running one: what applies live, what needs a restart."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import config as config_mod
from ..api import CommandResult
from ..config import Config


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """Worker counts to apply live, the new fleet log level (None = unchanged), and what needs a restart."""

    counts: dict = field(default_factory=dict)  # route name -> workers
    log_level: str | None = None
    restart: tuple[str, ...] = ()


def plan_reload(running: Config, before: Config, new: Config, desired: dict[str, int]) -> ReloadPlan:
    """``running``: the config the fleet runs; ``before``: the file as it was last read (so command-line
    overrides and live toggles are not taken for edits); ``desired``: current counts per route."""
    restart: list[str] = []
    counts: dict[str, int] = {}
    names = {r.name for r in new.routes}
    old_routes = {r.name: r for r in running.routes}
    restart += [f"route '{n}' was removed" for n in old_routes if n not in names]
    for r in new.routes:
        old = old_routes.get(r.name)
        if old is None:
            restart.append(f"route '{r.name}' is new")
            continue
        if (r.topic, r.handler, r.shared, r.qos, r.group) != (old.topic, old.handler, old.shared, old.qos, old.group):
            restart.append(f"route '{r.name}' changed beyond its worker count")
        if r.workers != desired.get(r.name):
            counts[r.name] = r.workers
    if new.broker != before.broker or (new.fleet.group, new.fleet.handlers) != (before.fleet.group,
                                                                               before.fleet.handlers):
        restart.append("broker or fleet settings changed")
    level = new.fleet.log_level if new.fleet.log_level != before.fleet.log_level else None
    return ReloadPlan(counts, level, tuple(restart))


def save_counts(config: Config, counts: dict[str, int], note: Callable[[str, str, str], None]) -> CommandResult:
    """Write the running worker counts into ``config``'s file (a backup kept), or say why not."""
    try:
        backup = config_mod.save_worker_counts(config, counts)
    except OSError as exc:
        return CommandResult.refused(f"could not write {config.path}: {exc}")
    except config_mod.ConfigError as exc:
        return CommandResult.refused(exc.problem + (f" ({exc.fix})" if exc.fix else ""))
    note("INFO", "fleet", f"wrote worker counts to {config.path} (backup {backup})")
    return CommandResult.accepted(f"wrote worker counts to {config.path.name} (previous file kept as "
                                  f"{Path(backup).name}; only the workers values changed)")
