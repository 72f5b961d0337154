"""rmqtui benchmark (run it through bench/run.py): the shared machinery of the figures.

Run from the repository root:

    .venv/bin/python bench/run.py [--quick] [--only NAME[,NAME]] [--out PATH] [--write-readme]

Everything runs against a private Mosquitto (rmqtui's EmbeddedBroker on a free loopback
port); load comes from the ``mosquitto_pub`` C client.  Each figure is a median of
repetitions and every comparison is a ratio of two figures measured in the same run,
interleaved, so the load of other processes on the machine hits both sides alike.
The run is bench/runner.py, the figures bench/fig_*.py, the targets and the report bench/report.py;
see bench/README.md for what each figure means.
"""

from __future__ import annotations

import contextlib
import json
import os
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
from rmqtui.testing.wait import WaitTimeout, wait_for  # noqa: E402

PY = sys.executable
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
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
    """rmqtui.testing's wait, raising TimeoutError: a figure that times out is recorded as an error."""
    try:
        return wait_for(pred, timeout, interval, what)
    except WaitTimeout as exc:
        raise TimeoutError(str(exc)) from None


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def start_method() -> str:
    """The start method the engine uses for workers (wherever the engine keeps that rule)."""
    for mod in ("rmqtui.engine.supervisor", "rmqtui.engine.supervisor.procs", "rmqtui.engine.runtime"):
        try:
            return __import__(mod, fromlist=["start_method"]).start_method()
        except (ImportError, AttributeError):
            continue
    return os.environ.get("RMQTUI_START_METHOD", "forkserver")


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
        # heartbeat_interval: the engine default unless a figure sets it; hang_timeout under 1.5 keepalives,
        # so handlers run on the network thread as with the defaults (supervisor/specs.py)
        f = {"group": "g", "handlers": "bh", "hang_timeout": 60.0,
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
                   timeout: float = 60.0, receive_max: int = 0, fastest: bool = False) -> subprocess.Popen:
        p = subprocess.Popen([PY, str(BENCH / "bare_sub.py"), "--port", str(self.port), "--topic", topic,
                              "--qos", str(qos), "--protocol", protocol, "--client-id", self.uid("bare"),
                              "--status", str(status), "--burn-ms", str(burn_ms), "--timeout", "1500",
                              "--receive-max", str(receive_max)] + (["--fastest"] if fastest else []),
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
    def rep(self, pids: list[int], status_files, topic: str, n: int, qos: int, timeout: float,
            observe: tuple[int, ...] = ()) -> dict:
        """Pre-load ``n`` messages while the consumers are SIGSTOPped, resume them, time the drain.

        The consumers stay connected and subscribed, so the broker queues the whole load
        for them; the publisher can therefore never be the bottleneck, and it does not
        compete with the consumers for the CPU while they are measured.

        ``observe``: more pids whose CPU over the same interval is reported (``observed_cpu_s``).
        """
        before = {str(f): (read_status(str(f)) or (0, 0.0, 0.0, 0))[0] for f in status_files()}
        stop_and_wait(pids)
        try:
            pub_s = self.publish(topic, n, qos)
        finally:
            cpu0 = {p: cpu_seconds(p) for p in (*pids, *observe)}
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
        observed = {p: cpu_seconds(p) - cpu0[p] for p in observe}
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
                "wake_latency_s": first - t_cont, "per_consumer": sorted(counts),
                "observed_cpu_s": observed}


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


def private_dirs(tmp: Path) -> None:
    """Every fleet of the run keeps its runtime and state files under the run's temp dir (deleted at the end)."""
    if os.environ.get("RMQTUI_BENCH_DIRS"):
        return  # a child of a run: keep the parent's
    for var, sub in (("RUNTIME_DIRECTORY", "run"), ("STATE_DIRECTORY", "state")):
        d = tmp / sub
        d.mkdir(mode=0o700, exist_ok=True)
        os.environ[var] = str(d)
    os.environ["RMQTUI_BENCH_DIRS"] = "1"
