"""Figures about the fleet's life: start-up per start method, draining a worker with a backlog, and the
busy case (the supervisor's and the TUI's CPU while the workers run flat out)."""

from __future__ import annotations

import asyncio
import time
import tomllib

import psutil

from benchlib import Bench, log, median, ratio, run_child, start_method, wait_until
from fig_idle import RMQTUI, STREAM_INTERVAL
from fleetproc import HeadlessFleet

# --------------------------------------------------------------------------- 3. start-up

def child_startup(args) -> dict:
    """Runs in a fresh process (so the start method is fresh): add_worker -> subscribed, ``--reps`` times."""
    from rmqtui.engine.snapshot import WorkerState

    b = Bench(args, port=args.port)
    reps = args.reps
    out = {"start_method": start_method(), "add_ms": [], "process_ms": [], "remove_ms": []}
    try:
        cfg = b.project([{"name": "su", "topic": "bench/startup", "handler": "bh.plain:handle", "shared": True,
                          "workers": 1, "qos": 1}], protocol="v5")
        t0 = time.perf_counter()
        fleet = b.start_fleet(cfg)
        b.subscribed(fleet, "su", 1, timeout=60)
        out["first_worker_ms"] = (time.perf_counter() - t0) * 1000  # includes the forkserver's start
        time.sleep(0.5)

        def state_of(wid):
            for w in fleet.snapshot().workers:
                if w.id == wid:
                    return w
            return None

        for _ in range(reps):
            t0 = time.perf_counter()
            fleet.add_worker("su")
            t_pid = None
            deadline = t0 + 30
            while time.perf_counter() < deadline:
                w = state_of("su/1")
                if w is not None and w.pid and t_pid is None:
                    t_pid = time.perf_counter()
                if w is not None and w.state is WorkerState.SUBSCRIBED:
                    break
                time.sleep(0.002)
            else:
                raise TimeoutError("the added worker did not subscribe in 30 s")
            t1 = time.perf_counter()
            out["add_ms"].append((t1 - t0) * 1000)
            out["process_ms"].append(((t_pid or t1) - t0) * 1000)
            time.sleep(0.2)
            t0 = time.perf_counter()
            fleet.remove_worker("su", "su/1")
            wait_until(lambda: state_of("su/1") is None, 30, 0.002, "the removed worker to go")
            out["remove_ms"].append((time.perf_counter() - t0) * 1000)
            time.sleep(0.2)
    finally:
        b.close()
    out["median_ms"] = median(out["add_ms"])
    out["median_process_ms"] = median(out["process_ms"])
    out["median_remove_ms"] = median(out["remove_ms"])
    return out


def fig_startup(b: Bench) -> dict:
    """3. Fleet.add_worker -> worker subscribed, per start method, each in a fresh process."""

    reps = 3 if b.quick else 10
    out = {"repetitions": reps, "in_use": start_method(), "methods": {}}
    for method in ("forkserver", "spawn", "fork"):
        log(f"startup: {method}, {reps} adds")
        res = run_child(b, "startup", ["--reps", str(reps)], env={"RMQTUI_START_METHOD": method}, timeout=180)
        out["methods"][method] = res
        if "median_ms" in res:
            log(f"  {method}: add->subscribed median {res['median_ms']:.1f} ms (process {res['median_process_ms']:.1f}"
                f" ms), first worker {res['first_worker_ms']:.0f} ms, remove {res['median_remove_ms']:.0f} ms")
        else:
            log(f"  {method}: {res.get('error')}")
    fs = out["methods"].get("forkserver", {}).get("median_ms")
    for method, res in out["methods"].items():
        res["ratio_to_forkserver"] = ratio(res.get("median_ms"), fs)
    return out


# --------------------------------------------------------------------------- 6. drain

def fig_drain(b: Bench) -> dict:
    """6. remove_worker on a worker with a QoS 1 backlog (2 ms handler): drain time, handled, nothing lost."""
    n = 600 if b.quick else 2_000
    reps = 1 if b.quick else 3
    out: dict = {"messages": n, "repetitions": reps, "handler_ms": 2, "reps": []}
    cfg = b.project([{"name": "dr", "topic": "bench/drain", "handler": "bh.slow:handle", "shared": True,
                      "workers": 2, "qos": 1}], protocol="v5")
    status = cfg.parent / "status"

    def seqs_of(pid):
        try:
            return [int(x) for x in (status / f"seq{pid}.txt").read_text().split()]
        except (OSError, ValueError):
            return []

    fleet = b.start_fleet(cfg)
    try:
        for r in range(reps):
            ws = {w.id: w.pid for w in b.subscribed(fleet, "dr", 2)}
            victim_pid = ws["dr/1"]
            start = r * n
            before_victim = len(seqs_of(victim_pid))
            b.publish("bench/drain", n, 1, start=start)
            at_remove = len(seqs_of(victim_pid)) - before_victim
            t0 = time.perf_counter()
            res = fleet.remove_worker("dr", "dr/1")
            wait_until(lambda: all(w.id != "dr/1" for w in fleet.snapshot().workers), 60, 0.005, "the drained worker")
            drain_s = time.perf_counter() - t0
            victim_handled = len(seqs_of(victim_pid)) - before_victim

            def all_seen():
                seen = [s for f in status.glob("seq*.txt") for s in seqs_of(int(f.stem[3:])) if start <= s < start + n]
                return seen if len(set(seen)) >= n else None

            try:
                seen = wait_until(all_seen, 60, 0.1, "every message handled")
            except TimeoutError:
                seen = [s for f in status.glob("seq*.txt") for s in seqs_of(int(f.stem[3:])) if start <= s < start + n]
            rep = {"accepted": res.ok if hasattr(res, "ok") else str(res), "drain_s": drain_s,
                   "victim_handled_before_remove": at_remove, "victim_handled_total": victim_handled,
                   "backlog_at_remove": victim_handled - at_remove, "lost": n - len(set(seen)),
                   "duplicates": len(seen) - len(set(seen))}
            rep["drain_ms_per_backlog_msg"] = 1000 * drain_s / max(1, rep["backlog_at_remove"])
            out["reps"].append(rep)
            log(f"drain rep {r}: {drain_s:.2f}s to remove a worker with {rep['backlog_at_remove']} queued; "
                f"it handled {victim_handled}; lost {rep['lost']}, duplicates {rep['duplicates']}")
            fleet.add_worker("dr")
    finally:
        b.stop_fleet(fleet)
    out["drain_s"] = median([x["drain_s"] for x in out["reps"]])
    out["backlog_at_remove"] = median([x["backlog_at_remove"] for x in out["reps"]])
    out["victim_handled_total"] = median([x["victim_handled_total"] for x in out["reps"]])
    out["drain_ms_per_backlog_msg"] = median([x["drain_ms_per_backlog_msg"] for x in out["reps"]])
    out["lost_total"] = sum(x["lost"] for x in out["reps"])
    out["duplicates_total"] = sum(x["duplicates"] for x in out["reps"])
    return out


# --------------------------------------------------------------------------- busy


def busy_project(b: Bench, workers: int):
    # a topic of its own: a stopped fleet keeps its sessions (and their shared subscriptions) on the broker
    return b.project([{"name": "busy", "topic": f"bench/{b.uid('busy')}", "handler": "bh.noop:handle",
                       "shared": True, "workers": workers, "qos": 1}], protocol="v3.1.1")


def busy_messages(b: Bench) -> int:
    # several seconds of draining per repetition: the supervisor's share is a few ms of CPU a second,
    # and CPU times come in 10 ms ticks
    return 50_000 if b.quick else 100_000


def busy_reps(b: Bench, cfg, pids: list[int], observe: tuple[int, ...], reps: int, n: int) -> dict:
    """Pre-loaded backlog drained by ``pids``; CPU of ``observe`` as a fraction of the workers' CPU."""
    topic, status_dir = tomllib.loads(cfg.read_text())["routes"][0]["topic"], cfg.parent / "status"
    got = []
    for _ in range(reps):
        got.append(b.rep(pids, lambda: list(status_dir.glob("w*.txt")), topic, n, 1, timeout=120 + n / 500,
                         observe=observe))
    workers_cpu = sum(r["cpu_s"] for r in got)
    observed = sum(sum(r["observed_cpu_s"].values()) for r in got)
    return {"rate": median([r["rate"] for r in got]), "workers_cpu_s": workers_cpu, "observed_cpu_s": observed,
            "fraction_percent": 100 * observed / workers_cpu if workers_cpu else None,
            "complete": all(r["complete"] for r in got)}


def child_busy_tui(args) -> dict:
    """Fresh process: an in-process Fleet with the TUI running while its workers drain a backlog."""
    from rmqtui.engine.snapshot import WorkerState
    from rmqtui.ui.app import FleetApp

    b = Bench(args, port=args.port)
    try:
        cfg = busy_project(b, args.workers)
        fleet = b.start_fleet(cfg)
        wait_until(lambda: sum(1 for w in fleet.snapshot().workers if w.state is WorkerState.SUBSCRIBED)
                   == args.workers, 60, 0.1, "workers subscribed")
        pids = [w.pid for w in fleet.snapshot().workers]
        n = busy_messages(b)

        async def drive():
            async with FleetApp(fleet).run_test(size=(160, 50)) as pilot:
                await pilot.pause(1.0)
                return await asyncio.to_thread(busy_reps, b, cfg, pids, (psutil.Process().pid,), args.reps, n)

        return asyncio.run(drive())
    finally:
        b.close()


def fig_busy(b: Bench) -> dict:
    """Supervisor (rmqtui --no-ui) and TUI process CPU per unit of worker CPU while 2 workers run flat out."""
    workers, reps = 2, (2 if b.quick else 3)
    n = busy_messages(b)
    out: dict = {"workers": workers, "messages": n, "repetitions": reps, "protocol": "v3.1.1", "qos": 1}
    log(f"busy: rmqtui --no-ui --json, {workers} workers draining {reps} x {n} messages")
    cfg = busy_project(b, workers)
    h = HeadlessFleet(RMQTUI, cfg, interval=STREAM_INTERVAL)
    try:
        h.wait_ready(60)
        pids = [w["pid"] for w in h.ready_snapshot["workers"]]
        out["headless"] = busy_reps(b, cfg, pids, (h.pid,), reps, n)
    finally:
        h.stop(30)
    log(f"  supervisor: {out['headless']['fraction_percent']:.1f}% of the workers' CPU at "
        f"{out['headless']['rate']:.0f} msg/s")
    log(f"busy: in-process fleet + TUI, {workers} workers")
    out["tui"] = run_child(b, "busy_tui", ["--workers", str(workers), "--reps", str(reps)], timeout=300)
    log("  tui: " + (f"{out['tui']['fraction_percent']:.1f}% of the workers' CPU" if "fraction_percent" in out["tui"]
                     else str(out["tui"].get("error"))[:300]))
    return out
