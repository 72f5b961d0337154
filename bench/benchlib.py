"""rmqtui benchmark (run it through bench/run.py): worker throughput, fleet scaling,
start-up, memory, supervisor overhead, drain.

Run from the repository root:

    .venv/bin/python bench/run.py [--quick] [--only NAME[,NAME]] [--out bench/results/latest.json]

Everything runs against a private Mosquitto (rmqtui's EmbeddedBroker on a free loopback
port); load comes from the ``mosquitto_pub`` C client.  Each figure is a median of
repetitions and every comparison is a ratio of two figures measured in the same run,
interleaved, so the load of other processes on the machine hits both sides alike.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from probe import read_status  # noqa: E402

from rmqtui.engine.broker import EmbeddedBroker, free_port  # noqa: E402

PY = sys.executable
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
FIGURES = ("throughput", "scaling", "startup", "overhead", "memory", "drain")
PAYLOAD_BYTES = 100

# --------------------------------------------------------------------------- small helpers


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b):
    return (a / b) if (a is not None and b) else None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait_until(pred, timeout: float, interval: float = 0.02, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def stop_and_wait(pids) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: all(psutil.Process(p).status() == psutil.STATUS_STOPPED for p in pids), 5,
               0.005, "SIGSTOP")


def cont(pids) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


class Bench:
    """Shared state of one benchmark run: the broker, the temp dir, what was started."""

    def __init__(self, args, port: int | None = None) -> None:
        self.args = args
        self.quick = args.quick
        self.tmp = Path(tempfile.mkdtemp(prefix="rmqtui-bench-"))
        self.broker = EmbeddedBroker(self.tmp, host="127.0.0.1", port=free_port()) if port is None else None
        self._port = port
        self.procs: list[subprocess.Popen] = []
        self.fleets: list = []
        self.results: dict = {}
        self._payloads: dict = {}
        self._n = 0

    # -- life --------------------------------------------------------------------------------
    def start(self) -> None:
        if self.broker is None:
            return
        self.broker.start()
        log(f"private Mosquitto pid {self.broker.pid} on 127.0.0.1:{self.broker.port} (dir {self.tmp})")

    def close(self) -> None:
        for f in self.fleets:
            with contextlib.suppress(Exception):
                f.stop(timeout=10)
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    os.kill(p.pid, signal.SIGCONT)
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        if self.broker is not None:
            self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def uid(self, stem: str) -> str:
        self._n += 1
        return f"{stem}-{os.getpid()}-{self._n}"

    @property
    def port(self) -> int:
        return self.broker.port if self.broker is not None else self._port

    # -- load --------------------------------------------------------------------------------
    def payload_file(self, n: int, start: int = 0) -> Path:
        key = (n, start)
        if key not in self._payloads:
            path = self.tmp / f"payload-{start}-{n}.txt"
            with open(path, "w") as f:
                for i in range(start, start + n):
                    head = '{"seq":%d,"pad":"' % i
                    f.write(head + "x" * (PAYLOAD_BYTES - len(head) - 2) + '"}\n')
            self._payloads[key] = path
        return self._payloads[key]

    def publish(self, topic: str, n: int, qos: int, start: int = 0, timeout: float = 120.0) -> float:
        """Publish ``n`` lines with mosquitto_pub -l; return the wall time.

        QoS 1 loads go in chunks of at most 50,000 per mosquitto_pub: with more lines than
        message ids (65,535) in its queue, mosquitto_pub 2.0.11 silently loses the excess
        (exit status 0; see bench/backlog_stall.py), while the broker itself queues 100k fine.
        """
        chunk = n if qos == 0 else 50_000
        t0 = time.monotonic()
        for off in range(0, n, chunk):
            self._publish_once(topic, min(chunk, n - off), qos, start + off, timeout)
        return time.monotonic() - t0

    def _publish_once(self, topic: str, n: int, qos: int, start: int, timeout: float) -> None:
        path = self.payload_file(n, start)
        with open(path, "rb") as stdin:
            p = subprocess.Popen([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic,
                                  "-q", str(qos), "-l", "-M", "1000", "-i", self.uid("pub")],
                                 stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.procs.append(p)
            try:
                _, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise TimeoutError(f"mosquitto_pub did not finish {n} messages in {timeout}s")
        if p.returncode != 0:
            raise RuntimeError(f"mosquitto_pub failed ({p.returncode}): {err.decode(errors='replace')}")

    # -- projects and fleets ------------------------------------------------------------------
    def project(self, routes: list[dict], *, protocol: str = "v5", fleet: dict | None = None) -> Path:
        root = self.tmp / self.uid("project")
        (root / "bh").mkdir(parents=True)
        (root / "status").mkdir()
        (root / "bh" / "__init__.py").write_text("")
        for name, burn in (("noop", 0.0), ("burn", 0.2)):
            (root / "bh" / f"{name}.py").write_text(textwrap.dedent(f"""\
                import os, sys
                sys.path.insert(0, {str(BENCH)!r})
                from probe import Probe
                _hit = Probe(os.path.join({str(root / "status")!r}, "w%d.txt" % os.getpid()),
                             burn_ms={burn!r}).hit

                def handle(msg):
                    _hit()
                """))
        (root / "bh" / "plain.py").write_text("def handle(msg):\n    pass\n")
        (root / "bh" / "slow.py").write_text(textwrap.dedent(f"""\
            import json, os, time
            _f = None

            def handle(msg):
                global _f
                if _f is None:
                    _f = open(os.path.join({str(root / "status")!r}, "seq%d.txt" % os.getpid()), "a",
                              buffering=1)
                time.sleep(0.002)
                _f.write("%d\\n" % json.loads(msg.payload)["seq"])
            """))
        b = {"embedded": False, "host": "127.0.0.1", "port": self.port, "protocol": protocol, "keepalive": 60}
        # heartbeat_interval: the engine default unless a figure sets it
        f = {"group": "g", "handlers": "bh", "hang_timeout": 600.0,
             "drain_timeout": 30.0, "client_prefix": self.uid("rb"), "dead_letter_topic": ""}
        f.update(fleet or {})
        lines = ["[broker]"] + [f"{k} = {json.dumps(v)}" for k, v in b.items()]
        lines += ["", "[fleet]"] + [f"{k} = {json.dumps(v)}" for k, v in f.items()]
        for r in routes:
            lines += ["", "[[routes]]"] + [f"{k} = {json.dumps(v)}" for k, v in r.items()]
        path = root / "routemq.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start_fleet(self, config: Path, **kwargs):
        from rmqtui.engine.config import load
        from rmqtui.engine.supervisor import Fleet

        fleet = Fleet(load(config), **kwargs)
        fleet.start()
        self.fleets.append(fleet)
        return fleet

    def stop_fleet(self, fleet) -> None:
        fleet.stop(timeout=15)
        with contextlib.suppress(ValueError):
            self.fleets.remove(fleet)

    @staticmethod
    def subscribed(fleet, route: str, k: int, timeout: float = 60.0) -> list:
        from rmqtui.engine.snapshot import WorkerState

        def ready():
            ws = [w for w in fleet.snapshot().workers
                  if w.route == route and w.pid and w.state is WorkerState.SUBSCRIBED]
            return ws if len(ws) == k else None

        return wait_until(ready, timeout, 0.02, f"{k} subscribed workers on {route}")

    # -- bare subscribers ------------------------------------------------------------------------
    def start_bare(self, topic: str, qos: int, protocol: str, status: Path, burn_ms: float = 0.0,
                   timeout: float = 60.0, receive_max: int = 0) -> subprocess.Popen:
        p = subprocess.Popen([PY, str(BENCH / "bare_sub.py"), "--port", str(self.port), "--topic", topic,
                              "--qos", str(qos), "--protocol", protocol, "--client-id", self.uid("bare"),
                              "--status", str(status), "--burn-ms", str(burn_ms), "--timeout", "1500",
                              "--receive-max", str(receive_max)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        if not sel.select(timeout) or p.stdout.readline().strip() != "READY":
            p.kill()
            raise TimeoutError(f"bare subscriber did not subscribe: {p.stderr.read() if p.poll() else ''}")
        return p

    def stop_bare(self, procs) -> None:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    # -- one measured repetition ----------------------------------------------------------------
    def rep(self, pids: list[int], status_files, topic: str, n: int, qos: int, timeout: float) -> dict:
        """Pre-load ``n`` messages while the consumers are SIGSTOPped, resume them, time the drain.

        The consumers stay connected and subscribed, so the broker queues the whole load
        for them; the publisher can therefore never be the bottleneck, and it does not
        compete with the consumers for the CPU while they are measured.
        """
        def statuses():
            return [read_status(str(f)) for f in status_files()]

        before = {str(f): (read_status(str(f)) or (0, 0.0, 0.0, 0))[0] for f in status_files()}
        stop_and_wait(pids)
        try:
            pub_s = self.publish(topic, n, qos)
        finally:
            cpu0 = {p: cpu_seconds(p) for p in pids}
            t_cont = time.time()
            cont(pids)

        def done():
            total = 0
            for f in status_files():
                s = read_status(str(f))
                if s:
                    total += s[0] - before.get(str(f), 0)
            return total >= n

        try:
            wait_until(done, timeout, 0.02, f"{n} messages handled")
            ok = True
        except TimeoutError:
            ok = False
        cpu = sum(cpu_seconds(p) - cpu0[p] for p in pids)
        time.sleep(0.15)  # one more probe status write
        counts, firsts, lasts = [], [], []
        for f in status_files():
            s = read_status(str(f))
            if not s:
                continue
            c = s[0] - before.get(str(f), 0)
            counts.append(c)
            if c > 0:
                firsts.append(s[1] if s[1] >= t_cont - 0.05 else t_cont)
                lasts.append(s[2])
        got = sum(counts)
        first = min(firsts) if firsts else t_cont
        last = max(lasts) if lasts else t_cont
        secs = max(1e-6, last - first)
        return {"n": n, "received": got, "complete": ok and got >= n, "seconds": secs, "rate": got / secs,
                "cpu_s": cpu, "cpu_s_per_100k": cpu * 100_000 / max(1, got), "publish_s": pub_s,
                "wake_latency_s": first - t_cont, "per_consumer": sorted(counts)}


# =========================================================================== figures


def fig_throughput(b: Bench) -> dict:
    """1. One worker vs one bare paho subscriber, QoS 0/1, v5/v3.1.1."""
    n0 = 10_000 if b.quick else 100_000
    reps = 1 if b.quick else 3
    n1 = n0
    out: dict = {"messages": n0, "messages_qos1": n1, "repetitions": reps, "payload_bytes": PAYLOAD_BYTES,
                 "cases": {}}
    for protocol in ("v5", "v3.1.1"):
        for qos in (0, 1):
            n = n1 if qos else n0
            key = f"{protocol}-qos{qos}"
            log(f"throughput {key}: {reps} x {n} messages")
            topic_w, topic_b = f"bench/{key}/w", f"bench/{key}/b"
            cfg = b.project([{"name": "tp", "topic": topic_w, "handler": "bh.noop:handle", "shared": True,
                              "workers": 1, "qos": qos}], protocol=protocol)
            fleet = b.start_fleet(cfg)
            status_dir = cfg.parent / "status"
            bare_status = status_dir / "bare.txt"
            bare = b.start_bare(f"$share/bare/{topic_b}", qos, protocol, bare_status)
            try:
                wpid = b.subscribed(fleet, "tp", 1)[0].pid
                time.sleep(0.3)
                idle = psutil.Process(wpid).memory_full_info()
                case = {"worker": [], "bare": [], "worker_idle_rss": idle.rss, "worker_idle_uss": idle.uss}
                h0 = fleet.snapshot().handled
                for r in range(reps):
                    order = ("bare", "worker") if r % 2 == 0 else ("worker", "bare")
                    for who in order:
                        if who == "bare":
                            res = b.rep([bare.pid], lambda: [bare_status], topic_b, n, qos, timeout=120 + n / 500)
                        else:
                            res = b.rep([wpid], lambda: list(status_dir.glob("w*.txt")), topic_w, n, qos,
                                        timeout=120 + n / 500)
                        case[who].append(res)
                        log(f"  {who:6} rep {r}: {res['rate']:9.0f} msg/s  cpu {res['cpu_s_per_100k']:.2f} s/100k"
                            f"  got {res['received']}/{n}  (publish {res['publish_s']:.1f}s)")
                    if r == 0:
                        m = psutil.Process(wpid).memory_full_info()
                        case["worker_after_rss"], case["worker_after_uss"] = m.rss, m.uss
                time.sleep(0.7)  # one more heartbeat
                case["snapshot_handled"] = fleet.snapshot().handled - h0
            finally:
                b.stop_bare([bare])
                b.stop_fleet(fleet)
            for who in ("worker", "bare"):
                case[f"{who}_rate"] = median([x["rate"] for x in case[who]])
                case[f"{who}_cpu_per_100k"] = median([x["cpu_s_per_100k"] for x in case[who]])
                case[f"{who}_complete"] = all(x["complete"] for x in case[who])
            case["ratio_rate"] = ratio(case["worker_rate"], case["bare_rate"])
            case["ratio_cpu"] = ratio(case["worker_cpu_per_100k"], case["bare_cpu_per_100k"])
            out["cases"][key] = case
    import hotpath

    out["hotpath_us"] = {f"qos{q}": hotpath.measure(50_000 if b.quick else 200_000, q) for q in (0, 1)}
    c = out["cases"]
    for qos in (0, 1):
        out[f"v5_over_v311_worker_qos{qos}"] = ratio(c[f"v5-qos{qos}"]["worker_rate"],
                                                     c[f"v3.1.1-qos{qos}"]["worker_rate"])
        out[f"v5_over_v311_bare_qos{qos}"] = ratio(c[f"v5-qos{qos}"]["bare_rate"], c[f"v3.1.1-qos{qos}"]["bare_rate"])
    return out


def fig_scaling(b: Bench) -> dict:
    """2. 1..4 workers on one shared route, 0.2 ms CPU handler, vs as many bare subscribers in one $share group."""
    n = 3_000 if b.quick else 12_000
    reps = 1 if b.quick else 3
    qos, protocol = 1, "v5"
    out: dict = {"messages": n, "repetitions": reps, "qos": qos, "protocol": protocol, "burn_ms": 0.2,
                 "workers": {}}
    topic_w, topic_b = "bench/scale/w", "bench/scale/b"
    cfg = b.project([{"name": "sc", "topic": topic_w, "handler": "bh.burn:handle", "shared": True, "workers": 1,
                      "qos": qos}], protocol=protocol)
    status_dir = cfg.parent / "status"
    fleet = b.start_fleet(cfg)
    try:
        for k in (1, 2, 3, 4):
            log(f"scaling: {k} worker(s), {reps} x {n} messages")
            fleet.scale("sc", k)
            pids = [w.pid for w in b.subscribed(fleet, "sc", k)]
            bare_files = [status_dir / f"bare-k{k}-{i}.txt" for i in range(k)]
            bares = [b.start_bare(f"$share/bare/{topic_b}", qos, protocol, f, burn_ms=0.2) for f in bare_files]
            case = {"fleet": [], "bare": []}
            try:
                for r in range(reps):
                    order = ("bare", "fleet") if r % 2 == 0 else ("fleet", "bare")
                    for who in order:
                        if who == "bare":
                            res = b.rep([p.pid for p in bares], lambda: bare_files, topic_b, n, qos,
                                        timeout=60 + n / 200)
                        else:
                            res = b.rep(pids, lambda: [status_dir / f"w{p}.txt" for p in pids], topic_w, n, qos,
                                        timeout=60 + n / 200)
                        case[who].append(res)
                        log(f"  {who:5} rep {r}: {res['rate']:8.0f} msg/s  per consumer {res['per_consumer']}"
                            f"  got {res['received']}/{n}")
            finally:
                b.stop_bare(bares)
            for who in ("fleet", "bare"):
                case[f"{who}_rate"] = median([x["rate"] for x in case[who]])
                case[f"{who}_spread"] = [min(x["per_consumer"]) if x["per_consumer"] else 0 for x in case[who]][-1:] + \
                    [max(x["per_consumer"]) if x["per_consumer"] else 0 for x in case[who]][-1:]
                case[f"{who}_complete"] = all(x["complete"] for x in case[who])
            case["ratio_rate"] = ratio(case["fleet_rate"], case["bare_rate"])
            out["workers"][str(k)] = case
    finally:
        b.stop_fleet(fleet)
    r1 = out["workers"]["1"]
    for k, case in out["workers"].items():
        case["fleet_speedup"] = ratio(case["fleet_rate"], r1["fleet_rate"])
        case["bare_speedup"] = ratio(case["bare_rate"], r1["bare_rate"])
    return out


# --------------------------------------------------------------------------- 3. start-up

def child_startup(args) -> dict:
    """Runs in a fresh process (so the start method is fresh): add_worker -> subscribed, ``--reps`` times."""
    from rmqtui.engine.snapshot import WorkerState
    from rmqtui.engine.supervisor import start_method

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


def run_child(b: Bench, kind: str, extra: list[str], env: dict | None = None, timeout: float = 300) -> dict:
    out = b.tmp / f"{b.uid('child')}.json"
    cmd = [PY, str(BENCH / "run.py"), "--child", kind, "--port", str(b.port), "--out", str(out)] + extra
    if b.quick:
        cmd.append("--quick")
    p = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    b.procs.append(p)
    try:
        text, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return {"error": f"child {kind} timed out after {timeout}s"}
    if p.returncode != 0 or not out.exists():
        return {"error": f"child {kind} failed ({p.returncode}): {text[-1500:]}"}
    return json.loads(out.read_text())


def fig_startup(b: Bench) -> dict:
    """3. Fleet.add_worker -> worker subscribed, per start method, each in a fresh process."""
    from rmqtui.engine.supervisor import start_method

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


# --------------------------------------------------------------------------- 5. supervisor / TUI overhead

def _windows(b: Bench) -> tuple[int, float]:
    return (3, 2.0) if b.quick else (4, 5.0)


def headless_run(b: Bench, workers: int, heartbeat: float | None = None) -> dict:
    """``rmqtui --no-ui --interval 2`` with ``workers`` idle workers: its own CPU (children excluded) and RSS."""
    cache = b.__dict__.setdefault("_headless", {})
    if (workers, heartbeat) in cache:
        return cache[(workers, heartbeat)]
    nwin, win = _windows(b)
    cfg = b.project([{"name": "idle", "topic": "bench/idle", "handler": "bh.plain:handle", "shared": True,
                      "workers": workers, "qos": 1}], protocol="v5",
                    fleet={"drain_timeout": 20.0, **({"heartbeat_interval": heartbeat} if heartbeat else {})})
    exe = str(Path(PY).parent / "rmqtui")
    logf = open(cfg.parent / "headless.out", "w")
    p = subprocess.Popen([exe, "--no-ui", "--interval", "2", "-c", str(cfg)], stdout=logf, stderr=subprocess.STDOUT,
                         start_new_session=True, cwd=cfg.parent)
    b.procs.append(p)
    res: dict = {"workers": workers, "window_s": win, "heartbeat_interval": heartbeat}
    try:
        proc = psutil.Process(p.pid)
        t0 = time.monotonic()

        def ready():
            return f"workers {workers}/{workers}" in (cfg.parent / "headless.out").read_text()

        wait_until(ready, 120, 0.2, f"{workers} workers running under rmqtui --no-ui")
        res["start_s"] = time.monotonic() - t0
        time.sleep(3.0)  # let the last ones connect and subscribe
        cpus, rss, uss = [], [], []
        for _ in range(nwin):
            c0, w0 = cpu_seconds(p.pid), time.monotonic()
            time.sleep(win)
            cpus.append(100 * (cpu_seconds(p.pid) - c0) / (time.monotonic() - w0))
            m = proc.memory_full_info()
            rss.append(m.rss)
            uss.append(m.uss)
        res.update(cpu_windows=cpus, cpu_percent=median(cpus), rss=median(rss), uss=median(uss))
        ws = [c for c in proc.children(recursive=True)]
        wm = []
        for c in ws:
            with contextlib.suppress(psutil.Error):
                if c.pid != p.pid and "mosquitto" not in c.name():
                    wm.append(c.memory_full_info().uss)
        res["child_uss_median"] = median(wm)
    finally:
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        res["stop_s"] = time.monotonic() - t0
        logf.close()
    cache[(workers, heartbeat)] = res
    return res


def child_fleetcpu(args) -> dict:
    """In a fresh process: a real Fleet with ``--workers`` idle workers; sampler pass time, then the TUI's CPU."""
    import asyncio

    from rmqtui.engine.snapshot import WorkerState

    b = Bench(args, port=args.port)
    nwin, win = _windows(b)
    out: dict = {"workers": args.workers, "window_s": win}
    me = psutil.Process()
    try:
        cfg = b.project([{"name": "idle", "topic": "bench/idle", "handler": "bh.plain:handle", "shared": True,
                          "workers": args.workers, "qos": 1}], protocol="v5", fleet={"drain_timeout": 20.0})
        fleet = b.start_fleet(cfg)
        wait_until(lambda: sum(1 for w in fleet.snapshot().workers if w.state is WorkerState.SUBSCRIBED)
                   == args.workers, 120, 0.2, "workers subscribed")
        time.sleep(2.5)
        samples = []
        for _ in range(4):
            time.sleep(1.05)
            samples.append(fleet.snapshot().extra.get("sample_seconds"))
        out["sample_seconds"] = samples
        out["sample_ms_median"] = 1000 * median(samples)
        # engine only, no front end: the baseline the TUI adds to
        cpus = []
        for _ in range(nwin):
            c0, w0 = cpu_seconds(me.pid), time.monotonic()
            time.sleep(win)
            cpus.append(100 * (cpu_seconds(me.pid) - c0) / (time.monotonic() - w0))
        out["engine_cpu_windows"] = cpus
        out["engine_cpu_percent"] = median(cpus)
        if args.no_tui:
            return out
        try:
            from rmqtui.ui.app import FleetApp
        except Exception as exc:  # noqa: BLE001 - the UI is being written by someone else
            out["tui_error"] = f"TODO: rmqtui.ui.app not importable: {type(exc).__name__}: {exc}"
            return out

        async def drive():
            app = FleetApp(fleet)
            async with app.run_test(size=(160, 50)) as pilot:
                await pilot.pause(1.0)
                tcpu = []
                for _ in range(nwin):
                    c0, w0 = cpu_seconds(me.pid), time.monotonic()
                    await asyncio.sleep(win)
                    tcpu.append(100 * (cpu_seconds(me.pid) - c0) / (time.monotonic() - w0))
                return tcpu

        try:
            tcpu = asyncio.run(asyncio.wait_for(drive(), timeout=nwin * win + 60))
            out["tui_cpu_windows"] = tcpu
            out["cpu_percent"] = median(tcpu)
            out["tui_only_percent"] = out["cpu_percent"] - out["engine_cpu_percent"]
        except Exception as exc:  # noqa: BLE001
            import traceback

            out["tui_error"] = f"{type(exc).__name__}: {exc}: {traceback.format_exc()[-800:]}"
    finally:
        b.close()
    return out


def fig_overhead(b: Bench) -> dict:
    """5. Supervisor CPU headless (rmqtui --no-ui) and with the TUI, idle workers; sampler pass time."""
    counts = (10, 100) if b.quick else (10, 50, 100)
    nwin, win = _windows(b)
    out: dict = {"windows": nwin, "window_s": win, "headless": {}, "tui": {}, "sampler": {}}
    for n in counts:
        log(f"overhead: rmqtui --no-ui with {n} idle workers ({nwin} x {win:.0f} s)")
        h = headless_run(b, n)
        out["headless"][str(n)] = h
        log(f"  headless {n}: cpu {h['cpu_percent']:.2f}% (windows {[round(x, 2) for x in h['cpu_windows']]}), "
            f"rss {h['rss'] / 1e6:.0f} MB, start {h['start_s']:.1f}s, stop {h['stop_s']:.1f}s")
    # decomposition: the same 100 workers heartbeating 4x less often (engine cost per heartbeat)
    log("overhead: rmqtui --no-ui with 100 idle workers, heartbeat_interval 2.0 instead of the default")
    h = headless_run(b, 100, heartbeat=2.0)
    out["headless_100_hb2"] = h
    out["hb2_over_hb05"] = ratio(h["cpu_percent"], out["headless"]["100"]["cpu_percent"])
    log(f"  headless 100, hb 2.0: cpu {h['cpu_percent']:.2f}% = {out['hb2_over_hb05']:.2f} x the 0.5 s heartbeat")
    log("overhead: in-process Fleet, engine only, 100 idle workers")
    r = run_child(b, "fleetcpu", ["--workers", "100", "--no-tui"], timeout=300)
    out["engine_100_current"] = r
    log(f"  engine cpu {r.get('engine_cpu_percent')}%, sampler pass {r.get('sample_ms_median')} ms"
        + (f" {r['error']}" if "error" in r else ""))
    for n in counts:
        log(f"overhead: in-process Fleet + TUI (app.run_test) with {n} idle workers")
        r = run_child(b, "fleetcpu", ["--workers", str(n)], timeout=300)
        out["tui"][str(n)] = r
        out["sampler"][str(n)] = {"sample_ms_median": r.get("sample_ms_median"),
                                  "engine_cpu_percent": r.get("engine_cpu_percent")}
        if "cpu_percent" in r:
            log(f"  tui {n}: process cpu {r['cpu_percent']:.1f}% (engine alone {r['engine_cpu_percent']:.1f}%), "
                f"sampler pass {r['sample_ms_median']:.1f} ms")
        else:
            log(f"  tui {n}: {r.get('tui_error') or r.get('error')}")
    return out


# --------------------------------------------------------------------------- 4. memory

def fig_memory(b: Bench) -> dict:
    """4. Worker RSS/USS idle and after 100k messages; supervisor RSS with 10 and 100 idle workers."""
    out: dict = {}
    cfg = b.project([{"name": "mem", "topic": "bench/mem", "handler": "bh.plain:handle", "shared": True,
                      "workers": 3, "qos": 1}], protocol="v5")
    fleet = b.start_fleet(cfg)
    try:
        ws = b.subscribed(fleet, "mem", 3)
        time.sleep(1.0)
        ms = [psutil.Process(w.pid).memory_full_info() for w in ws]
        out["idle_worker_rss"] = [m.rss for m in ms]
        out["idle_worker_uss"] = [m.uss for m in ms]
        out["idle_worker_pss"] = [getattr(m, "pss", None) for m in ms]
        out["idle_worker_uss_mb"] = median(out["idle_worker_uss"]) / 1e6
        out["idle_worker_rss_mb"] = median(out["idle_worker_rss"]) / 1e6
        out["worker_snapshot_uss"] = None
    finally:
        b.stop_fleet(fleet)
    tp = b.results.get("throughput", {}).get("cases")
    if tp:
        after = [c.get("worker_after_uss") for c in tp.values()]
        out["after_100k_uss_mb"] = median(after) / 1e6 if median(after) else None
        out["after_100k_rss_mb"] = median([c.get("worker_after_rss") for c in tp.values()]) / 1e6
        out["after_source"] = f"throughput figure: one worker after {b.results['throughput']['messages']} messages, " \
                              f"median over its {len(tp)} cases"
    else:
        out["after_100k_uss_mb"] = None
        out["after_source"] = "run with the throughput figure to get it"
    for n in (10, 100):
        h = headless_run(b, n)
        out[f"supervisor_{n}_rss_mb"] = h["rss"] / 1e6
        out[f"supervisor_{n}_uss_mb"] = h["uss"] / 1e6
        out[f"headless_{n}_worker_uss_mb"] = (h["child_uss_median"] or 0) / 1e6
    log(f"memory: idle worker USS {out['idle_worker_uss_mb']:.1f} MB (RSS {out['idle_worker_rss_mb']:.1f} MB); "
        f"supervisor RSS 10: {out['supervisor_10_rss_mb']:.0f} MB, 100: {out['supervisor_100_rss_mb']:.0f} MB")
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


# =========================================================================== report


def targets(results: dict) -> list[tuple[str, str, str]]:
    """(target, PASS/MISS/n.a., detail) rows."""
    rows = []

    def row(name, value, limit, higher_is_better, fmt):
        if value is None:
            rows.append((name, "n/a", "not measured"))
            return
        ok = value >= limit if higher_is_better else value <= limit
        rows.append((name, "PASS" if ok else "MISS", fmt(value, limit)))

    tp = results.get("throughput")
    if tp:
        for key, case in tp["cases"].items():
            row(f"worker/bare msg/s {key} >= 0.90", case["ratio_rate"], 0.90, True,
                lambda v, l: f"ratio {v:.2f} ({case['worker_rate']:.0f} vs {case['bare_rate']:.0f} msg/s)")
    sc = results.get("scaling")
    if sc:
        for k, case in sc["workers"].items():
            row(f"fleet/bare msg/s, 0.2 ms handler, {k} workers >= 0.90", case["ratio_rate"], 0.90, True,
                lambda v, l: f"ratio {v:.2f} ({case['fleet_rate']:.0f} vs {case['bare_rate']:.0f} msg/s)")
    st = results.get("startup")
    if st:
        for method, m in st["methods"].items():
            v = m.get("median_ms")
            row(f"add-worker to SUBACK median <= 50 ms ({method}{', in use' if method == st['in_use'] else ''})",
                v, 50, False, lambda v, l: f"{v:.1f} ms = {v / l:.2f} x target")
    mem = results.get("memory")
    if mem:
        v = mem.get("idle_worker_uss_mb")
        row("idle worker USS <= 10 MB", v, 10, False, lambda v, l: f"{v:.1f} MB = {v / l:.2f} x target")
    ov = results.get("overhead")
    if ov:
        h = ov.get("headless", {}).get("100", {})
        row("supervisor CPU, 100 idle workers <= 3% of a core", h.get("cpu_percent"), 3.0, False,
            lambda v, l: f"{v:.2f}% = {v / l:.2f} x target")
        t = ov.get("tui", {})
        t100 = t.get("100", {}) if isinstance(t, dict) else {}
        row("TUI CPU, 100 idle workers <= 10% of a core", t100.get("cpu_percent"), 10.0, False,
            lambda v, l: f"{v:.2f}% = {v / l:.2f} x target")
    return rows


def fmt_num(v, spec=".0f"):
    return "-" if v is None else format(v, spec)


def table(results: dict) -> str:
    lines = []
    tp = results.get("throughput")
    if tp:
        lines.append(f"1. Worker throughput ({tp['messages']} msgs QoS 0, {tp.get('messages_qos1')} QoS 1, "
                     f"{tp['payload_bytes']} B, "
                     f"median of {tp['repetitions']})")
        lines.append(f"   {'case':<14}{'worker msg/s':>14}{'bare msg/s':>12}{'ratio':>7}"
                     f"{'worker cpu s/100k':>19}{'bare cpu s/100k':>17}{'ratio':>7}")
        for key, c in tp["cases"].items():
            lines.append(f"   {key:<14}{fmt_num(c['worker_rate']):>14}{fmt_num(c['bare_rate']):>12}"
                         f"{fmt_num(c['ratio_rate'], '.2f'):>7}{fmt_num(c['worker_cpu_per_100k'], '.2f'):>19}"
                         f"{fmt_num(c['bare_cpu_per_100k'], '.2f'):>17}{fmt_num(c['ratio_cpu'], '.2f'):>7}"
                         + ("" if c["worker_complete"] and c["bare_complete"] else "  INCOMPLETE"))
        lines.append(f"   v5/v3.1.1 worker msg/s: QoS0 {fmt_num(tp['v5_over_v311_worker_qos0'], '.2f')}, "
                     f"QoS1 {fmt_num(tp['v5_over_v311_worker_qos1'], '.2f')};  bare: QoS0 "
                     f"{fmt_num(tp['v5_over_v311_bare_qos0'], '.2f')}, QoS1 {fmt_num(tp['v5_over_v311_bare_qos1'], '.2f')}")
        hp = tp.get("hotpath_us")
        if hp:
            lines.append("   per-message path outside the broker (bench/hotpath.py), us/msg: " + ", ".join(
                f"{k} worker {v['worker_us']:.2f} vs bare callback {v['bare_us']:.2f}" for k, v in hp.items()))
        lines.append("")
    sc = results.get("scaling")
    if sc and "workers" in sc:
        lines.append(f"2. Fleet scaling ({sc['messages']} msgs, {sc['burn_ms']} ms CPU handler, QoS {sc['qos']} "
                     f"{sc['protocol']}, median of {sc['repetitions']})")
        lines.append(f"   {'workers':<9}{'fleet msg/s':>12}{'bare msg/s':>12}{'ratio':>7}{'fleet x1':>10}"
                     f"{'bare x1':>9}   fleet min/max per worker   bare min/max")
        for k, c in sc["workers"].items():
            lines.append(f"   {k:<9}{fmt_num(c['fleet_rate']):>12}{fmt_num(c['bare_rate']):>12}"
                         f"{fmt_num(c['ratio_rate'], '.2f'):>7}{fmt_num(c['fleet_speedup'], '.2f'):>10}"
                         f"{fmt_num(c['bare_speedup'], '.2f'):>9}   {str(c['fleet_spread']):<26} {c['bare_spread']}"
                         + ("" if c["fleet_complete"] and c["bare_complete"] else "  INCOMPLETE"))
        lines.append("")
    st = results.get("startup")
    if st and "methods" in st:
        lines.append(f"3. Start-up: add_worker -> subscribed (median of {st['repetitions']}; in use: {st['in_use']})")
        lines.append(f"   {'method':<12}{'add->SUBACK ms':>15}{'->pid ms':>10}{'first worker ms':>17}"
                     f"{'remove ms':>11}{'x forkserver':>14}")
        for m, r in st["methods"].items():
            if "median_ms" not in r:
                lines.append(f"   {m:<12}{r.get('error', '?')[:100]}")
                continue
            lines.append(f"   {m:<12}{r['median_ms']:>15.1f}{r['median_process_ms']:>10.1f}"
                         f"{r['first_worker_ms']:>17.0f}{r['median_remove_ms']:>11.0f}"
                         f"{fmt_num(r.get('ratio_to_forkserver'), '.2f'):>14}")
        lines.append("")
    mem = results.get("memory")
    if mem and "idle_worker_uss_mb" in mem:
        lines.append("4. Memory (MB)")
        lines.append(f"   idle worker: USS {mem['idle_worker_uss_mb']:.1f}, RSS {mem['idle_worker_rss_mb']:.1f} "
                     f"(median of {len(mem['idle_worker_uss'])});  after load: USS "
                     f"{fmt_num(mem.get('after_100k_uss_mb'), '.1f')}, RSS {fmt_num(mem.get('after_100k_rss_mb'), '.1f')}")
        lines.append(f"   supervisor (rmqtui --no-ui): 10 idle workers RSS {mem['supervisor_10_rss_mb']:.0f} "
                     f"(USS {mem['supervisor_10_uss_mb']:.0f}), 100 idle workers RSS {mem['supervisor_100_rss_mb']:.0f} "
                     f"(USS {mem['supervisor_100_uss_mb']:.0f})")
        lines.append("")
    ov = results.get("overhead")
    if ov and "headless" in ov:
        lines.append(f"5. Supervisor overhead, % of one core (median of {ov['windows']} x {ov['window_s']:.0f} s windows)")
        lines.append(f"   {'workers':<9}{'headless':>10}{'engine only':>13}{'engine+TUI':>12}{'TUI part':>10}"
                     f"{'sampler pass ms':>17}")
        for k, h in ov["headless"].items():
            t = ov["tui"].get(k, {})
            lines.append(f"   {k:<9}{fmt_num(h.get('cpu_percent'), '.2f'):>10}"
                         f"{fmt_num(t.get('engine_cpu_percent'), '.2f'):>13}{fmt_num(t.get('cpu_percent'), '.2f'):>12}"
                         f"{fmt_num(t.get('tui_only_percent'), '.2f'):>10}{fmt_num(t.get('sample_ms_median'), '.1f'):>17}"
                         + (f"  {t.get('tui_error') or t.get('error')}"[:120] if ("tui_error" in t or "error" in t)
                            else ""))
        if "headless_100_hb2" in ov:
            lines.append(f"   100 workers with heartbeat_interval 2.0 instead of the default: headless "
                         f"{ov['headless_100_hb2']['cpu_percent']:.2f}% ({ov['hb2_over_hb05']:.2f} x)")
        if "engine_100_current" in ov:
            lines.append(f"   100 workers, engine only in-process: "
                         f"{fmt_num(ov['engine_100_current'].get('engine_cpu_percent'), '.2f')}%")
        lines.append("")
    dr = results.get("drain")
    if dr and "reps" in dr:
        lines.append(f"6. Drain: remove_worker with a QoS 1 backlog ({dr['messages']} msgs to 2 workers, "
                     f"{dr['handler_ms']} ms handler, median of {dr['repetitions']})")
        lines.append(f"   drain {dr['drain_s']:.2f} s for a backlog of {dr['backlog_at_remove']:.0f} "
                     f"({dr['drain_ms_per_backlog_msg']:.2f} ms/msg); the removed worker handled "
                     f"{dr['victim_handled_total']:.0f}; lost {dr['lost_total']}, duplicates {dr['duplicates_total']}")
        lines.append("")
    for name in FIGURES:
        if isinstance(results.get(name), dict) and "error" in results[name]:
            lines.append(f"{name}: ERROR {results[name]['error']}")
    lines.append("Targets")
    for name, verdict, detail in targets(results):
        lines.append(f"   {verdict:<5} {name}: {detail}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repetition and small counts (under 3 minutes)")
    ap.add_argument("--only", default="", help=f"comma-separated figures: {', '.join(FIGURES)}")
    ap.add_argument("--out", default=str(BENCH / "results" / "latest.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--no-tui", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        res = {"startup": child_startup, "fleetcpu": child_fleetcpu}[args.child](args)
        Path(args.out).write_text(json.dumps(res, default=str))
        return 0
    only = [x.strip() for x in args.only.split(",") if x.strip()] or list(FIGURES)
    unknown = [x for x in only if x not in FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {unknown}; choose from {', '.join(FIGURES)}")
    b = Bench(args)
    t0 = time.monotonic()

    def on_term(signum, frame):  # clean up (fleets, broker, subscribers) on SIGTERM too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    results: dict = {"meta": {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "figures": only,
        "python": platform.python_version(), "cpus": os.cpu_count(), "host": platform.node(),
        "loadavg_start": os.getloadavg(), "start_method": os.environ.get("RMQTUI_START_METHOD", "forkserver"),
        "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip()}}
    funcs = {name: globals().get(f"fig_{name}") for name in FIGURES}
    try:
        b.start()
        for name in only:
            fn = funcs[name]
            if fn is None:
                results[name] = {"todo": "not implemented yet"}
                continue
            t = time.monotonic()
            try:
                results[name] = b.results[name] = fn(b)
            except Exception as exc:  # one broken figure must not lose the others
                import traceback

                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results[name]["elapsed_s"] = round(time.monotonic() - t, 1)
    finally:
        b.close()
    results["meta"]["elapsed_s"] = round(time.monotonic() - t0, 1)
    results["meta"]["loadavg_end"] = os.getloadavg()
    results["targets"] = [{"target": n, "verdict": v, "detail": d} for n, v, d in targets(results)]
    text = table(results)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    out.with_suffix(".txt").write_text(text + "\n")
    log(f"wrote {out} ({results['meta']['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
