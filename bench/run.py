"""rmqtui benchmark: worker throughput, fleet scaling, start-up, memory, supervisor overhead, drain.

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
FIGURES = ("throughput", "scaling", "startup", "memory", "overhead", "drain")
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

    def __init__(self, args) -> None:
        self.args = args
        self.quick = args.quick
        self.tmp = Path(tempfile.mkdtemp(prefix="rmqtui-bench-"))
        self.broker = EmbeddedBroker(self.tmp, host="127.0.0.1", port=free_port())
        self.procs: list[subprocess.Popen] = []
        self.fleets: list = []
        self.results: dict = {}
        self._payloads: dict = {}
        self._n = 0

    # -- life --------------------------------------------------------------------------------
    def start(self) -> None:
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
        self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def uid(self, stem: str) -> str:
        self._n += 1
        return f"{stem}-{os.getpid()}-{self._n}"

    @property
    def port(self) -> int:
        return self.broker.port

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
        """Publish ``n`` lines with mosquitto_pub -l; return its wall time."""
        path = self.payload_file(n, start)
        t0 = time.monotonic()
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
        return time.monotonic() - t0

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
        f = {"group": "g", "handlers": "bh", "heartbeat_interval": 0.5, "hang_timeout": 600.0,
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
                   timeout: float = 60.0) -> subprocess.Popen:
        p = subprocess.Popen([PY, str(BENCH / "bare_sub.py"), "--port", str(self.port), "--topic", topic,
                              "--qos", str(qos), "--protocol", protocol, "--client-id", self.uid("bare"),
                              "--status", str(status), "--burn-ms", str(burn_ms), "--timeout", "1500"],
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
    n = 10_000 if b.quick else 100_000
    reps = 1 if b.quick else 3
    out: dict = {"messages": n, "repetitions": reps, "payload_bytes": PAYLOAD_BYTES, "cases": {}}
    for protocol in ("v5", "v3.1.1"):
        for qos in (0, 1):
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
    c = out["cases"]
    for qos in (0, 1):
        out[f"v5_over_v311_worker_qos{qos}"] = ratio(c[f"v5-qos{qos}"]["worker_rate"],
                                                     c[f"v3.1.1-qos{qos}"]["worker_rate"])
        out[f"v5_over_v311_bare_qos{qos}"] = ratio(c[f"v5-qos{qos}"]["bare_rate"], c[f"v3.1.1-qos{qos}"]["bare_rate"])
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
        lines.append(f"1. Worker throughput ({tp['messages']} msgs of {tp['payload_bytes']} B, "
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
        lines.append("")
    lines.append("Targets")
    for name, verdict, detail in targets(results):
        lines.append(f"   {verdict:<5} {name}: {detail}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repetition and small counts (under 3 minutes)")
    ap.add_argument("--only", default="", help=f"comma-separated figures: {', '.join(FIGURES)}")
    ap.add_argument("--out", default=str(BENCH / "results" / "latest.json"))
    args = ap.parse_args(argv)
    only = [x.strip() for x in args.only.split(",") if x.strip()] or list(FIGURES)
    unknown = [x for x in only if x not in FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {unknown}; choose from {', '.join(FIGURES)}")
    b = Bench(args)
    t0 = time.monotonic()
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
                results[name] = fn(b)
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
