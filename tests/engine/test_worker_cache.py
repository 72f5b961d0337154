"""The engine's per-slot snapshot cache never shows stale figures: a random life of a fleet, checked at every step."""

from __future__ import annotations

import random
import signal

from rmqtui.engine.protocol import Heartbeat
from rmqtui.engine.supervisor.view import WorkerCache, build_snapshot
from rmqtui.testing.fake import FakeFleet, make_config

ROUTE = {"name": "work", "topic": "jobs/{id}", "handler": "h:handle", "workers": 3, "shared": True}


def test_cached_worker_snapshots_equal_fresh_ones_through_a_random_life_of_the_fleet():
    f = FakeFleet(make_config([ROUTE], fleet={"hang_timeout": 30.0}))
    f.start()
    rng = random.Random(7)
    cache = WorkerCache()
    handled: dict[str, int] = {}
    previous = {}
    reused = changed = 0
    for step in range(400):
        ids = [w.id for w in f.snapshot().workers]
        key = rng.choice(ids)
        op = rng.choice(["beat", "beat", "beat", "advance", "kill", "crash", "debug", "scale", "restart", "nothing"])
        if op == "beat" and f.slot(key) is not None and f.slot(key).pid is not None:
            handled[key] = handled.get(key, 0) + rng.choice([0, 0, 1, 5])
            f.tell(key, Heartbeat(f.clock.wall, handled[key], handled[key], 0, 0, 0.01 * handled[key], None, True))
        elif op == "advance":
            f.advance(rng.choice([0.1, 1.0, 5.0]))
        elif op == "kill" and f.slot(key) is not None and f.slot(key).pid is not None:
            f.end(key, -signal.SIGKILL)
        elif op == "crash" and f.slot(key) is not None and f.slot(key).pid is not None:
            f.end(key, 1, "ValueError: boom")
        elif op == "debug":
            f.set_log_level(rng.choice(["DEBUG", "INFO"]), key)
        elif op == "scale":
            f.scale("work", rng.choice([1, 2, 3, 4]))
        elif op == "restart":
            f.restart_worker(key)
        wall = f.clock.wall
        cached = build_snapshot(f._core, wall, f._sampler.get, cache=cache)
        fresh = build_snapshot(f._core, wall, f._sampler.get)
        assert cached.workers == fresh.workers, f"step {step} ({op} {key}): the cache showed stale figures"
        for w in cached.workers:
            old = previous.get(w.id)
            if old is w:
                reused += 1
            elif old is not None:
                assert old != w, f"step {step}: an equal snapshot was rebuilt as a new object"
                changed += 1
        previous = {w.id: w for w in cached.workers}
    assert reused > 100 and changed > 100, (reused, changed)
