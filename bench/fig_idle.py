"""Figures with idle workers: the supervisor's cost curve (10/100/1,000 workers), memory, the TUI's cost
in-process and attached over the control socket.

The supervisor runs as ``rmqtui --no-ui --json --interval 1`` (bench/fleetproc.py): readiness
comes from its JSON stream.  Its main thread is the headless front end (it builds and prints
the JSON lines), every other thread is the engine, so the CPU is reported split: the engine
("supervisor") and the front end ("--json stream").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path

import psutil

from benchlib import PY, Bench, cpu_seconds, log, median, run_child, wait_until
from fleetproc import HeadlessFleet, thread_cpu

RMQTUI = str(Path(PY).parent / "rmqtui")
STREAM_INTERVAL = 1.0


def windows(b: Bench) -> tuple[int, float]:
    """(count, seconds) of the CPU measurement windows."""
    return (3, 3.0) if b.quick else (4, 5.0)


def idle_project(b: Bench, workers: int, **fleet) -> Path:
    return b.project([{"name": "idle", "topic": "bench/idle", "handler": "bh.plain:handle", "shared": True,
                       "workers": workers, "qos": 1}], protocol="v5",
                     fleet={"drain_timeout": 20.0, "max_workers": max(256, workers), **fleet})


def measure_cpu(pid: int, nwin: int, win: float) -> dict:
    """CPU of ``pid`` over ``nwin`` windows: whole process, engine threads, main thread (% of one core).

    The figure is total CPU over total time (not the median window): the sampler of a large
    fleet runs less often than once a window, and its passes must count.
    """
    proc, wins = psutil.Process(pid), []
    c_start, m_start, t_start = *thread_cpu(pid), time.monotonic()
    for _ in range(nwin):
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(win)
        wins.append(100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0))
    c_end, m_end = thread_cpu(pid)
    elapsed = time.monotonic() - t_start
    mem = proc.memory_full_info()
    total = 100 * (c_end - c_start) / elapsed
    front = 100 * (m_end - m_start) / elapsed
    return {"cpu_windows": wins, "process_cpu_percent": total, "frontend_cpu_percent": front,
            "cpu_percent": total - front, "rss": mem.rss, "uss": mem.uss, "measured_s": elapsed}


def headless_run(b: Bench, workers: int, *, start_timeout: float = 120.0, stop_timeout: float = 60.0) -> dict:
    """``rmqtui --no-ui --json`` with ``workers`` idle workers: start time, CPU split, memory, stop time."""
    cache = b.__dict__.setdefault("_headless", {})
    if workers in cache:
        return cache[workers]
    nwin, win = windows(b)
    h = HeadlessFleet(RMQTUI, idle_project(b, workers), interval=STREAM_INTERVAL)
    res: dict = {"workers": workers, "windows": nwin, "window_s": win, "stream_interval_s": STREAM_INTERVAL}
    try:
        res["start_s"] = h.wait_ready(start_timeout)
        res["start_s_lower"] = (h.previous_time - h.launched) if h.previous_time else 0.0
        res["stream_max_gap_s"] = h.max_gap
        time.sleep(3.0)  # let connection and subscription work settle
        res.update(measure_cpu(h.pid, nwin, win))
        uss = []
        for c in h.descendants():
            with contextlib.suppress(psutil.Error):
                if "mosquitto" not in c.name():
                    uss.append(c.memory_full_info().uss)
        res["child_uss_median"] = median(uss)
    finally:
        res.update(h.stop(stop_timeout))
    cache[workers] = res
    return res


def fig_idle(b: Bench) -> dict:
    """Supervisor CPU and memory with 10, 100 (and in a full run 1,000) idle workers; start and stop times."""
    counts = (10, 100) if b.quick else (10, 100, 1000)
    out: dict = {"curve": {}, "stream_interval_s": STREAM_INTERVAL}
    for n in counts:
        log(f"idle: rmqtui --no-ui --json with {n} idle workers")
        try:
            r = headless_run(b, n, start_timeout=180.0 if n >= 1000 else 120.0)
        except Exception as exc:  # noqa: BLE001 - one size failing must not lose the others
            r = {"error": f"{type(exc).__name__}: {exc}"[:1500]}
            log(f"  {n}: {r['error'][:300]}")
        else:
            log(f"  {n}: supervisor {r['cpu_percent']:.2f}% (front end {r['frontend_cpu_percent']:.2f}%), "
                f"rss {r['rss'] / 1e6:.0f} MB, start {r['start_s']:.1f}s, stop {r['stop_s']:.1f}s, "
                f"left behind {r['left_behind']}")
        out["curve"][str(n)] = r
    return out


def fig_memory(b: Bench) -> dict:
    """Idle worker RSS/USS (3 workers, median); after load (from throughput); the supervisor's (from idle)."""
    out: dict = {}
    cfg = b.project([{"name": "mem", "topic": "bench/mem", "handler": "bh.plain:handle", "shared": True,
                      "workers": 3, "qos": 1}], protocol="v5")
    fleet = b.start_fleet(cfg)
    try:
        ws = b.subscribed(fleet, "mem", 3)
        time.sleep(1.0)
        ms = [psutil.Process(w.pid).memory_full_info() for w in ws]
    finally:
        b.stop_fleet(fleet)
    out["idle_worker_uss_mb"] = median([m.uss for m in ms]) / 1e6
    out["idle_worker_rss_mb"] = median([m.rss for m in ms]) / 1e6
    pss = median([getattr(m, "pss", None) for m in ms])
    out["idle_worker_pss_mb"] = pss / 1e6 if pss is not None else None
    tp = (b.results.get("throughput") or {}).get("cases")
    if tp:
        out["after_load"] = {"uss_mb": median([c.get("worker_after_uss") for c in tp.values()]) / 1e6,
                             "rss_mb": median([c.get("worker_after_rss") for c in tp.values()]) / 1e6,
                             "source": "the throughput figure's worker after its first repetition, median of its cases"}
    else:
        out["after_load"] = {"error": "measured in the throughput figure, which did not run or failed"}
    for n in (10, 100):
        h = headless_run(b, n)
        out[f"supervisor_{n}_rss_mb"] = h["rss"] / 1e6
        out[f"supervisor_{n}_uss_mb"] = h["uss"] / 1e6
    log(f"memory: idle worker USS {out['idle_worker_uss_mb']:.1f} MB (RSS {out['idle_worker_rss_mb']:.1f} MB)")
    return out


# --------------------------------------------------------------------------- the TUI


class CountingFleet:
    """A FleetControl that counts the snapshots a front end takes (its refresh rate), else passes through."""

    def __init__(self, fleet) -> None:
        self._fleet = fleet
        self.snapshots = 0

    def snapshot(self):
        self.snapshots += 1
        return self._fleet.snapshot()

    def __getattr__(self, name):
        return getattr(self._fleet, name)


def tui_cpu(fleet, nwin: int, win: float, app_class=None, also=None) -> dict:
    """Run the TUI on ``fleet`` under ``app.run_test()``: this process's CPU and the TUI's refreshes per second;
    ``also()`` (CPU seconds of something else) is read at the same instants, its rate returned as ``also_percent``."""
    if app_class is None:
        from rmqtui.ui.app import FleetApp as app_class

    counting = CountingFleet(fleet)
    me = psutil.Process()

    async def drive():
        app = app_class(counting)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause(1.0)
            n0, c0, t0 = counting.snapshots, cpu_seconds(me.pid), time.monotonic()
            a0 = also() if also else 0.0
            for _ in range(nwin):
                await asyncio.sleep(win)
            dt = time.monotonic() - t0
            out = {"cpu_percent": 100 * (cpu_seconds(me.pid) - c0) / dt,
                   "refreshes_per_s": (counting.snapshots - n0) / dt}
            if also:
                out["also_percent"] = 100 * (also() - a0) / dt
            return out

    return asyncio.run(asyncio.wait_for(drive(), timeout=nwin * win + 60))


def child_fleetcpu(args) -> dict:
    """Fresh process: a real Fleet with ``--workers`` idle workers: sampler pass, engine alone, engine + TUI."""
    from rmqtui.engine.snapshot import WorkerState

    b = Bench(args, port=args.port)
    nwin, win = windows(b)
    out: dict = {"workers": args.workers, "windows": nwin, "window_s": win}
    me = psutil.Process()
    try:
        fleet = b.start_fleet(idle_project(b, args.workers))
        wait_until(lambda: sum(1 for w in fleet.snapshot().workers if w.state is WorkerState.SUBSCRIBED)
                   == args.workers, 120, 0.2, "workers subscribed")
        time.sleep(2.5)
        samples = []
        for _ in range(4):
            time.sleep(1.05)
            samples.append((fleet.snapshot().extra or {}).get("sample_seconds"))
        out["sample_ms_median"] = 1000 * median(samples) if median(samples) is not None else None
        c0, t0 = cpu_seconds(me.pid), time.monotonic()
        time.sleep(nwin * win)
        out["engine_cpu_percent"] = 100 * (cpu_seconds(me.pid) - c0) / (time.monotonic() - t0)
        t = tui_cpu(fleet, nwin, win)
        out["refreshes_per_s"] = t["refreshes_per_s"]
        out["process_cpu_percent"] = t["cpu_percent"]
        out["cpu_percent"] = t["cpu_percent"] - out["engine_cpu_percent"]
    finally:
        b.close()
    return out


def child_attached(args) -> dict:
    """Fresh process: ``rmqtui --no-ui`` with ``--workers`` idle workers and the TUI attached over its socket.

    Reports this process's CPU (the attached TUI) and the supervisor's engine CPU while attached
    (over the TUI's own windows, once it is up: serving snapshots over the socket costs the
    supervisor too) and detached (the mean of a measurement before and one after).
    """
    try:
        from rmqtui.engine.control import RemoteFleet
    except ImportError as exc:
        raise RuntimeError(f"no control socket at this commit ({exc})") from None
    try:  # what `rmqtui attach` runs: the TUI whose quit detaches
        from rmqtui.attach import AttachedApp as app_class
    except ImportError:
        from rmqtui.ui.app import FleetApp as app_class
    b = Bench(args, port=args.port)
    nwin, win = windows(b)
    out: dict = {"workers": args.workers, "windows": nwin, "window_s": win}
    try:
        h = HeadlessFleet(RMQTUI, idle_project(b, args.workers), interval=STREAM_INTERVAL)
    except BaseException:
        b.close()
        raise
    try:
        h.wait_ready(120)
        time.sleep(2.0)

        def engine_seconds() -> float:  # every thread but the main one (that prints the --json stream)
            total, main = thread_cpu(h.pid)
            return total - main

        detached = [measure_cpu(h.pid, nwin, win)["cpu_percent"]]
        remote = RemoteFleet(h.config)
        try:  # the supervisor is measured over the TUI's own windows, once the TUI is up
            t = tui_cpu(remote, nwin, win, app_class, also=engine_seconds)
        finally:
            remote.close()
        time.sleep(1.0)
        detached.append(measure_cpu(h.pid, nwin, win)["cpu_percent"])  # before and after: a drift cancels out
        out["cpu_percent"] = t["cpu_percent"]
        out["refreshes_per_s"] = t["refreshes_per_s"]
        out["supervisor_cpu_percent_attached"] = t["also_percent"]
        out["supervisor_cpu_percent_detached"] = sum(detached) / 2
        out["supervisor_detached_windows"] = detached
    finally:
        h.stop(30)
        b.close()
    return out


def child_attach_tui(args) -> dict:
    """Fresh process: the attached TUI (AttachedApp on a RemoteFleet) on the fleet of ``--config`` for
    ``--seconds``; its parent measures this process's CPU from outside (see :func:`child_tui_pair`)."""
    from rmqtui.attach import AttachedApp
    from rmqtui.engine.control import RemoteFleet

    remote = RemoteFleet(args.config)
    counting = CountingFleet(remote)

    async def drive():
        async with AttachedApp(counting).run_test(size=(160, 50)):
            n0, t0 = counting.snapshots, time.monotonic()
            await asyncio.sleep(args.seconds)
            return {"refreshes_per_s": (counting.snapshots - n0) / (time.monotonic() - t0)}

    try:
        return asyncio.run(asyncio.wait_for(drive(), timeout=args.seconds + 60))
    finally:
        remote.close()


def _main_thread_cpu() -> float:
    import os

    with open(f"/proc/self/task/{os.getpid()}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_tui_pair(args) -> dict:
    """Fresh process: both TUIs on one fleet at the same time, so they see the same changes in the same seconds.

    This process runs an in-process Fleet of ``--workers`` idle workers with its control socket and
    the in-process TUI (FleetApp) on its main thread; a second process runs the attached TUI on the
    same fleet (:func:`child_attach_tui`).  Each window measures the in-process TUI's thread (the
    main thread: Textual runs there, the engine and the control socket in their own threads) and the
    whole attached process.  Measured apart, the two figures come from different minutes of a shared
    host; measured together, their ratio is about the TUIs.
    """
    import subprocess

    from benchlib import BENCH
    from rmqtui.engine import runtime
    from rmqtui.engine.control import ControlServer
    from rmqtui.ui.app import FleetApp

    b = Bench(args, port=args.port)
    nwin, win = windows(b)
    nwin *= 2  # the ratio of two small figures: twice the windows of the other TUI rows
    out: dict = {"workers": args.workers, "windows": nwin, "window_s": win}
    attached = None
    try:
        config = idle_project(b, args.workers)
        fleet = b.start_fleet(config)
        wait_until(lambda: sum(1 for w in fleet.snapshot().workers if w.state.value == "subscribed")
                   == args.workers, 120, 0.2, "workers subscribed")
        server = ControlServer(fleet, config, audit_dir=runtime.fleet_state_dir(config))
        server.start()
        result = b.tmp / f"{b.uid('pair')}.json"
        seconds = nwin * win + 15
        attached = subprocess.Popen([PY, str(BENCH / "run.py"), "--child", "attach_tui", "--config", str(config),
                                     "--seconds", str(seconds), "--out", str(result)], start_new_session=True)
        counting = CountingFleet(fleet)

        async def drive():
            async with FleetApp(counting).run_test(size=(160, 50)):
                await wait_async(lambda: any("snapshot" in s.streams for s in server.sessions), 60)
                await asyncio.sleep(3.0)  # both TUIs past their first full render
                rows = []
                n0, t_start = counting.snapshots, time.monotonic()
                for _ in range(nwin):
                    a0, b0, t0 = _main_thread_cpu(), cpu_seconds(attached.pid), time.monotonic()
                    await asyncio.sleep(win)
                    dt = time.monotonic() - t0
                    rows.append((100 * (_main_thread_cpu() - a0) / dt, 100 * (cpu_seconds(attached.pid) - b0) / dt))
                rate = (counting.snapshots - n0) / (time.monotonic() - t_start)
                return rows, rate

        rows, rate = asyncio.run(asyncio.wait_for(drive(), timeout=seconds + 60))
        attached.wait(timeout=seconds + 90)
        other = json.loads(result.read_text()) if result.exists() else {}
        server.close()
        inproc, att = [r[0] for r in rows], [r[1] for r in rows]
        out.update({"in_process_cpu_percent": sum(inproc) / nwin, "attached_cpu_percent": sum(att) / nwin,
                    "windows_in_process": inproc, "windows_attached": att,
                    "in_process_refreshes_per_s": rate, "attached_refreshes_per_s": other.get("refreshes_per_s"),
                    "threads": sorted(t.name for t in threading.enumerate())})
        out["ratio"] = out["attached_cpu_percent"] / out["in_process_cpu_percent"]
    finally:
        if attached is not None and attached.poll() is None:
            attached.kill()
            attached.wait()
        b.close()
    return out


async def wait_async(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the attached TUI did not subscribe")
        await asyncio.sleep(0.1)


def fig_tui(b: Bench) -> dict:
    """TUI CPU with 100 idle workers, in-process (FleetApp on a Fleet) and attached (FleetApp on a RemoteFleet),
    each alone, then both on one fleet at the same time (their ratio)."""
    n = 100
    out: dict = {"workers": n}
    for kind, key in (("fleetcpu", "in_process"), ("attached", "attached"), ("tui_pair", "pair")):
        log(f"tui: {key}, {n} idle workers")
        r = run_child(b, kind, ["--workers", str(n)], timeout=300)
        out[key] = r
        if "ratio" in r:
            log(f"  {key}: in-process {r['in_process_cpu_percent']:.2f}%, attached {r['attached_cpu_percent']:.2f}% "
                f"at the same time: attached / in-process {r['ratio']:.2f}")
        else:
            log(f"  {key}: " + (f"TUI {r['cpu_percent']:.1f}% of a core, {r['refreshes_per_s']:.2f} refreshes/s"
                                if "cpu_percent" in r else str(r.get("error"))[:300]))
    return out
