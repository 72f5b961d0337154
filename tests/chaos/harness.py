"""Fault-injection harness shared by the pytest chaos suite and ``run_long.py``.

A numbered QoS 1 publisher feeds a shared route while faults are injected;
the handler appends every sequence number it completed (with the time) to a
per-process file, a dead-letter subscriber collects what was given up on, and
:func:`account` says, per fault window, what was lost, duplicated and how
long recovery took.  Nothing here depends on pytest: waits raise
:class:`ChaosTimeout`.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import paho.mqtt.client as mqtt

from rmqtui.engine.broker import free_port
from rmqtui.engine.config import load
from rmqtui.engine.snapshot import BrokerState, WorkerState
from rmqtui.engine.supervisor import Fleet
from rmqtui.testing import WaitTimeout, wait_for
from rmqtui.testing.mqtt import Target, connect, new_client

FAIL_EVERY = 97  # the handler raises on seq % FAIL_EVERY == 0: those must end dead-lettered

#: The chaos handlers.  ``record`` completes a message by appending "seq redelivered time" to
#: out/<route>-<pid>.txt; it raises on every FAIL_EVERY-th seq and exits the process on a payload
#: carrying "exit" (a poison message).  ``crashy`` kills its process on every message when it runs
#: in the slot named in BAD_SLOT (multiprocessing names a worker "rmqtui-worker-<route>/<slot>").
HANDLER = f'''
import json, multiprocessing, os, time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
OUT.mkdir(exist_ok=True)
FAIL_EVERY = {FAIL_EVERY}
BAD_SLOT = (Path(__file__).resolve().parent / "bad_slot.txt")
_files = {{}}


def record(msg):
    data = json.loads(msg.payload)
    seq = data["seq"]
    if data.get("exit"):
        os._exit(9)
    if seq % FAIL_EVERY == 0:
        raise ValueError(f"bad reading {{seq}}")
    f = _files.get(msg.route)
    if f is None:
        f = _files[msg.route] = open(OUT / f"{{msg.route}}-{{os.getpid()}}.txt", "a", buffering=1)
    f.write(f"{{seq}} {{int(msg.redelivered)}} {{time.time():.4f}}\\n")


_bad = None


def crashy(msg):
    global _bad
    if _bad is None:
        _bad = BAD_SLOT.read_text().strip() if BAD_SLOT.exists() else ""
    if _bad and multiprocessing.current_process().name.endswith("-" + _bad):
        os._exit(7)
    record(msg)
'''


ChaosTimeout = WaitTimeout  # a bounded wait ran out


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until truthy; raise :class:`ChaosTimeout` past ``timeout`` seconds."""
    return wait_for(predicate, timeout, interval, what)


# --------------------------------------------------------------------------- project + fleet
class ChaosProject:
    """A throw-away project directory with the chaos handlers and a routemq.toml writer."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.handlers = self.root / "handlers"
        self.handlers.mkdir(parents=True, exist_ok=True)
        (self.handlers / "__init__.py").write_text("")
        (self.handlers / "chaos.py").write_text(textwrap.dedent(HANDLER))
        self.fleets: list[Fleet] = []

    def set_bad_slot(self, worker_id: str) -> None:
        (self.handlers / "bad_slot.txt").write_text(worker_id)

    def write(self, routes: list[dict], *, fleet: dict | None = None, broker: dict | None = None) -> Path:
        b = {"embedded": True, "host": "127.0.0.1", "port": free_port(), "protocol": "v3.1.1"}
        b.update(broker or {})
        f = {"group": "chaos", "handlers": "handlers", "heartbeat_interval": 0.2, "hang_timeout": 2.0,
             "drain_timeout": 5.0, "handler_retries": 2, "poison_crashes": 3}
        f.update(fleet or {})
        lines = ["[broker]"] + [f"{k} = {json.dumps(v)}" for k, v in b.items()]
        lines += ["", "[fleet]"] + [f"{k} = {json.dumps(v)}" for k, v in f.items()]
        for r in routes:
            lines += ["", "[[routes]]"] + [f"{k} = {json.dumps(v)}" for k, v in r.items()]
        path = self.root / "routemq.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, path: Path, env: dict | None = None) -> Fleet:
        fleet = Fleet(load(path, env=env), sample_interval=1.0)
        fleet.start()
        self.fleets.append(fleet)
        return fleet

    def stop_all(self) -> None:
        for fleet in self.fleets:
            fleet.stop(timeout=10)
        self.fleets.clear()

    def handled(self, route: str) -> dict[int, list[float]]:
        """seq -> handle times, over every process of ``route``."""
        out: dict[int, list[float]] = collections.defaultdict(list)
        for f in (self.handlers / "out").glob(f"{route}-*.txt"):
            for line in f.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3:  # a line being written is skipped until complete
                    out[int(parts[0])].append(float(parts[2]))
        return out


def route(name: str, workers: int, handler: str = "handlers.chaos:record") -> dict:
    return {"name": name, "topic": f"{name}/{{kind}}/{{id}}", "handler": handler, "shared": True,
            "workers": workers, "qos": 1}


def subscribed(fleet: Fleet, route_name: str, n: int | None = None):
    """The subscribed workers of a route with a live process; with ``n``, only when exactly n are."""
    snap = fleet.snapshot()
    ws = [w for w in snap.workers_of(route_name) if w.state is WorkerState.SUBSCRIBED and w.pid]
    if n is not None and (len(ws) != n or snap.route(route_name).running != n):
        return None
    return ws


def worker(fleet: Fleet, worker_id: str):
    return next((w for w in fleet.snapshot().workers if w.id == worker_id), None)


# --------------------------------------------------------------------------- clients
def _published(info: mqtt.MQTTMessageInfo) -> bool:
    """Acknowledged by the broker.  ``is_published()`` raises for a message queued while disconnected
    (rc NO_CONN) even after paho sent it on the reconnect and got the PUBACK; the flag it guards is right."""
    flag = getattr(info, "_published", None)
    if flag is not None:
        return bool(flag)
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False


class Publisher:
    """Numbered QoS 1 messages ``{"seq": n}`` at a steady rate with a bounded unacknowledged window.

    paho resends unacknowledged messages after a reconnect, so a broker restart only stalls it.
    ``acked()`` is the set of sequence numbers the broker acknowledged.
    """

    def __init__(self, port: Target, route_name: str, *, rate: float = 400.0, window: int = 200, start: int = 0,
                 extra: Callable[[int], dict] | None = None, limit: int | None = None) -> None:
        self.route = route_name
        self.limit = None if limit is None else start + limit
        self.rate = rate
        self.next_seq = start
        self.extra = extra
        self.sent: dict[int, tuple[float, mqtt.MQTTMessageInfo]] = {}  # seq -> (wall time, info)
        self._window = threading.Semaphore(window)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = new_client(port, f"chaos-pub-{os.getpid()}-{time.time_ns()}")
        self.client.max_inflight_messages_set(window)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_publish = lambda *a: self._window.release()
        connect(self.client, port)
        self.client.loop_start()

    def start(self) -> "Publisher":
        self._thread = threading.Thread(target=self._run, name="chaos-publisher", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        period = 1.0 / self.rate
        due = time.monotonic()
        while not self._stop.is_set() and (self.limit is None or self.next_seq < self.limit):
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            due = max(due + period, time.monotonic() - 0.2)  # after a stall, no large burst
            while not self._window.acquire(timeout=0.2):
                if self._stop.is_set():
                    return
            seq = self.next_seq
            body = {"seq": seq}
            if self.extra:
                body.update(self.extra(seq))
            kind = f"k{seq % 5}"
            info = self.client.publish(f"{self.route}/{kind}/{seq}", json.dumps(body), qos=1)
            self.sent[seq] = (time.time(), info)
            self.next_seq = seq + 1

    def stop(self, ack_timeout: float = 30.0) -> None:
        """Stop publishing and wait (bounded) for the outstanding acknowledgements."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        try:
            wait_until(lambda: all(_published(i) for _, i in list(self.sent.values())), ack_timeout,
                       "the broker to acknowledge every publish", interval=0.1)
        except ChaosTimeout:
            pass  # what was never acknowledged does not count as published
        self.client.disconnect()
        self.client.loop_stop()

    def acked(self) -> dict[int, float]:
        """seq -> publish wall time, for every message the broker acknowledged."""
        return {s: t for s, (t, i) in list(self.sent.items()) if _published(i)}


class DeadLetters:
    """A persistent-session subscriber to ``rmqtui/dead/#`` that survives broker restarts."""

    def __init__(self, port: Target) -> None:
        self.by_route: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.errors: dict[tuple[str, int], str] = {}
        self.ready = threading.Event()
        self.client = new_client(port, f"chaos-dead-{time.time_ns()}", clean=False)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = lambda c, *a: c.subscribe("rmqtui/dead/#", 1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._on_message
        connect(self.client, port)
        self.client.loop_start()
        wait_until(self.ready.is_set, 10, "the dead-letter subscription")

    def _on_message(self, client, userdata, msg) -> None:
        rec = json.loads(msg.payload)
        seq = json.loads(rec["payload"])["seq"]
        self.by_route[rec["route"]][seq] += 1
        self.errors[(rec["route"], seq)] = rec["error"]

    def seqs(self, route_name: str) -> collections.Counter:
        return collections.Counter(self.by_route[route_name])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------------------- accounting
@dataclass
class Fault:
    name: str
    at: float  # wall time the fault was injected
    recover: float | None = None  # seconds until the fault's own recovery condition held
    note: str = ""
    asserted: bool = True  # False: losses are reported, not asserted (broker crash)


@dataclass
class Figures:
    fault: str
    published: int = 0
    handled: int = 0
    dead: int = 0
    lost: int = 0
    duplicated: int = 0
    recover: float | None = None
    max_latency: float = 0.0
    asserted: bool = True
    note: str = ""
    lost_seqs: list = field(default_factory=list)


def account(acked: dict[int, float], handled: dict[int, list[float]], dead: collections.Counter,
            faults: list[Fault], *, start_at: float = 0.0) -> list[Figures]:
    """Figures per fault window: a message belongs to the last fault injected before it was published."""
    timeline = [Fault("baseline", start_at, None)] + sorted(faults, key=lambda f: f.at)
    rows = [Figures(f.name, recover=f.recover, asserted=f.asserted,
                    note=f.note) for f in timeline]
    starts = [f.at for f in timeline]
    import bisect

    for seq, t in acked.items():
        i = max(0, bisect.bisect_right(starts, t) - 1)
        row = rows[i]
        row.published += 1
        times = handled.get(seq)
        if times:
            row.handled += 1
            if len(times) > 1:
                row.duplicated += 1
            row.max_latency = max(row.max_latency, min(times) - t)
        elif dead.get(seq):
            row.dead += 1
        else:
            row.lost += 1
            row.lost_seqs.append(seq)
    return rows


def unaccounted(acked: Iterable[int], handled: dict, dead: collections.Counter) -> list[int]:
    return sorted(s for s in acked if s not in handled and not dead.get(s))


def table(rows: list[Figures], title: str = "") -> str:
    head = f"{'fault':<26}{'published':>10}{'handled':>9}{'dead':>6}{'lost':>6}{'dup':>6}" \
           f"{'recover s':>11}{'max lat s':>11}  note"
    lines = ([title] if title else []) + [head, "-" * len(head)]
    for r in rows:
        rec = f"{r.recover:.2f}" if r.recover is not None else "-"
        lost = f"{r.lost}" + ("" if r.asserted else "*")
        lines.append(f"{r.fault:<26}{r.published:>10}{r.handled:>9}{r.dead:>6}{lost:>6}{r.duplicated:>6}"
                     f"{rec:>11}{r.max_latency:>11.2f}  {r.note}")
    tot = Figures("total", *[sum(getattr(r, k) for r in rows) for k in ("published", "handled", "dead", "lost",
                                                                       "duplicated")])
    lines.append("-" * len(head))
    lines.append(f"{tot.fault:<26}{tot.published:>10}{tot.handled:>9}{tot.dead:>6}{tot.lost:>6}"
                 f"{tot.duplicated:>6}")
    if any(not r.asserted for r in rows):
        lines.append("* reported, not asserted (broker crash; or published before a crash-looping slot's session "
                     "was released: kept in that session until the slot is restarted)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- faults
class Injector:
    """Worker-level faults against one route, each waiting (bounded) for its recovery."""

    def __init__(self, fleet: Fleet, route_name: str, rng: random.Random, *, recover_timeout: float = 30.0,
                 log: Callable[[str], None] = lambda s: None) -> None:
        self.fleet = fleet
        self.route = route_name
        self.rng = rng
        self.timeout = recover_timeout
        self.log = log
        self.crashes: dict[str, list[float]] = collections.defaultdict(list)
        self.faults: list[Fault] = []

    def _victim(self):
        """A subscribed worker whose slot is far from the crash-loop threshold (5 crashes in 30 s)."""
        now = time.monotonic()
        ws = wait_until(lambda: subscribed(self.fleet, self.route), self.timeout, "a subscribed worker")
        calm = [w for w in ws if sum(1 for t in self.crashes[w.id] if now - t < 40) < 3]
        return self.rng.choice(calm or ws) if calm else None

    def _back(self, worker_id: str, old_pid: int):
        w = worker(self.fleet, worker_id)
        return w is not None and w.pid and w.pid != old_pid and w.state is WorkerState.SUBSCRIBED

    def kill(self) -> Fault | None:
        w = self._victim()
        if w is None:
            return None
        f = Fault(f"SIGKILL {w.id}", time.time())
        t0 = time.monotonic()
        os.kill(w.pid, signal.SIGKILL)
        self.crashes[w.id].append(t0)
        wait_until(lambda: self._back(w.id, w.pid), self.timeout, f"{w.id} to come back after SIGKILL")
        f.recover = time.monotonic() - t0
        f.note = "slot subscribed again"
        return self._done(f)

    def hang(self) -> Fault | None:
        w = self._victim()
        if w is None:
            return None
        f = Fault(f"SIGSTOP {w.id}", time.time())
        t0 = time.monotonic()
        os.kill(w.pid, signal.SIGSTOP)
        self.crashes[w.id].append(t0)
        try:
            wait_until(lambda: self._back(w.id, w.pid), self.timeout + self.fleet.config.fleet.hang_timeout,
                       f"{w.id} to be killed as hung and restarted")
        finally:
            try:
                os.kill(w.pid, signal.SIGCONT)  # harmless when it is gone; never leave a stopped child
            except ProcessLookupError:
                pass
        f.recover = time.monotonic() - t0
        hung = [r for r in self.fleet.logs_since(0) if r.source == w.id and "hung" in r.message]
        f.note = "watchdog kill + restart" + ("" if hung else " (NO hung event!)")
        return self._done(f)

    def scale(self, count: int) -> Fault:
        before = self.fleet.snapshot().route(self.route).desired
        f = Fault(f"scale {before}->{count}", time.time())
        t0 = time.monotonic()
        assert self.fleet.scale(self.route, count).ok
        wait_until(lambda: subscribed(self.fleet, self.route, count) and
                   len(self.fleet.snapshot().workers_of(self.route)) == count, self.timeout,
                   f"route {self.route} to have {count} subscribed workers")
        f.recover = time.monotonic() - t0
        f.note = "desired count subscribed" + (", drained" if count < before else "")
        return self._done(f)

    def _done(self, f: Fault) -> Fault:
        self.faults.append(f)
        self.log(f"  {f.name}: recovered in {f.recover:.2f}s")
        return f


def settle(count: Callable[[], int], target: int | None, timeout: float, quiet: float = 3.0) -> int:
    """Wait until ``count()`` reaches ``target`` or (target None / unreachable) stops changing for ``quiet`` s."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = count()
        if target is not None and n >= target:
            return n
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > quiet:
            return n
        time.sleep(0.1)
    return count()


# --------------------------------------------------------------------------- scenarios
@dataclass
class Result:
    rows: list[Figures]
    acked: dict
    handled: dict
    dead: collections.Counter
    fleet_events: list = field(default_factory=list)

    @property
    def lost(self) -> list[int]:
        return sorted(s for r in self.rows if r.asserted for s in r.lost_seqs)


def _finish(project: ChaosProject, pub: Publisher, sink: DeadLetters, route_name: str, faults: list[Fault],
            t_start: float, fleet: Fleet, quiet: float = 5.0, timeout: float = 60.0) -> Result:
    pub.stop()
    acked = pub.acked()

    def accounted() -> int:
        h, d = project.handled(route_name), sink.seqs(route_name)
        return sum(1 for s in acked if s in h or d.get(s))

    # the full count when nothing is lost; otherwise give up once nothing has moved for `quiet` s
    settle(accounted, len(acked), timeout, quiet=quiet)
    handled, dead = project.handled(route_name), sink.seqs(route_name)
    rows = account(acked, handled, dead, faults, start_at=t_start)
    events = [f"{r.level} {r.source}: {r.message.splitlines()[0]}" for r in fleet.logs_since(0)
              if r.level in ("ERROR", "WARNING") and "failed on" not in r.message]
    return Result(rows, acked, handled, dead, events)


def worker_chaos(project: ChaosProject, *, seconds: float, rate: float = 400.0, workers: int = 3,
                 seed: int = 1, gap: float = 1.0, log: Callable[[str], None] = print,
                 plan: list[str] | None = None) -> Result:
    """SIGKILLs, scale up/down and SIGSTOP hangs against a loaded shared route; raising handler throughout.

    ``plan`` is a fixed list of faults ("kill", "hang", "up", "down", "reset"); without it faults are drawn
    at random until ``seconds`` have passed.  Stops by itself: every wait is bounded.
    """
    rng = random.Random(seed)
    fleet = project.start(project.write([route("work", workers)]))
    wait_until(lambda: subscribed(fleet, "work", workers), 30, f"{workers} subscribed workers")
    sink = DeadLetters(fleet)
    pub = Publisher(fleet, "work", rate=rate)
    inj = Injector(fleet, "work", rng, log=log)
    try:
        t_start = time.time()
        pub.start()
        wait_until(lambda: len(project.handled("work")) > rate * 0.5, 30, "throughput")
        began = time.monotonic()
        steps = iter(plan) if plan is not None else None
        while time.monotonic() - began < seconds:
            if steps is not None:
                step = next(steps, None)
                if step is None:
                    break
            else:
                desired = fleet.snapshot().route("work").desired
                step = rng.choice(["kill", "kill", "kill", "hang",
                                   "up" if desired < workers + 1 else "down",
                                   "down" if desired > 2 else "up"])
            if step == "kill":
                inj.kill()
            elif step == "hang":
                inj.hang()
            elif step == "up":
                inj.scale(fleet.snapshot().route("work").desired + 1)
            elif step == "down":
                inj.scale(max(1, fleet.snapshot().route("work").desired - 1))
            elif step == "reset" and fleet.snapshot().route("work").desired != workers:
                inj.scale(workers)
            time.sleep(gap * (0.5 + rng.random()))
        inj.faults.append(Fault("(none: tail)", time.time(), note="no fault; publishing on"))
        time.sleep(1.0)
    finally:
        result = _finish(project, pub, sink, "work", inj.faults, t_start, fleet)
        sink.close()
    raised = [s for s in result.acked if s % FAIL_EVERY == 0]
    missing = [s for s in raised if not result.dead.get(s)]
    result.rows[0].note = f"raising handler: {len(raised)} raised, {len(missing)} not dead-lettered"
    return result


def broker_crash(project: ChaosProject, *, rate: float = 400.0, workers: int = 3, before: float = 2.0,
                 after: float = 2.0, log: Callable[[str], None] = print) -> Result:
    """Kill the embedded broker once under load; report what was lost (persistence saves every 2 s)."""
    fleet = project.start(project.write([route("work", workers)]))
    wait_until(lambda: subscribed(fleet, "work", workers), 30, f"{workers} subscribed workers")
    sink = DeadLetters(fleet)
    pub = Publisher(fleet, "work", rate=rate)
    faults: list[Fault] = []
    try:
        t_start = time.time()
        pub.start()
        wait_until(lambda: len(project.handled("work")) > rate * 0.5, 30, "throughput")
        time.sleep(before)  # steady load, not a correctness wait
        old_pid, before = fleet.snapshot().broker.pid, fleet.snapshot().broker.address
        f = Fault("broker SIGKILL", time.time(), asserted=False)
        t0 = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)  # from outside, as an OOM killer would
        wait_until(lambda: (b := fleet.snapshot().broker).state is BrokerState.UP and b.pid and b.pid != old_pid,
                   30, "the embedded broker to be restarted")
        up = time.monotonic() - t0
        wait_until(lambda: subscribed(fleet, "work", workers), 30, "every worker to resubscribe")
        resub = time.monotonic() - t0
        mark = f.at

        def resumed():
            acked = pub.acked()
            handled = project.handled("work")
            return any(t > mark and s in handled for s, t in acked.items())

        wait_until(resumed, 30, "a message published after the crash to be handled")
        f.recover = time.monotonic() - t0
        snap = fleet.snapshot()
        f.note = (f"broker up {up:.2f}s, workers resubscribed {resub:.2f}s, throughput back {f.recover:.2f}s; "
                  f"address kept: {snap.broker.address == before}")
        log(f"  broker: {f.note}")
        faults.append(f)
        time.sleep(after)
        faults.append(Fault("(none: tail)", time.time(), note="no fault; publishing on"))
        time.sleep(1.0)
    finally:
        result = _finish(project, pub, sink, "work", faults, t_start, fleet, quiet=4.0, timeout=40.0)
        sink.close()
    # a message the broker acknowledged shortly before the kill but had not saved yet (autosave
    # every 2 s) is a loss of the crash too: only the tail after the recovery is asserted
    result.rows[0].asserted = False
    return result


def crashloop(project: ChaosProject, *, rate: float = 300.0, workers: int = 3, after: float = 3.0,
              log: Callable[[str], None] = print) -> tuple[Result, dict]:
    """One slot of a shared route exits on every message; once it is in crashloop (and released) the other
    workers must get every new message.  Returns the result and facts for asserting."""
    project.set_bad_slot("cl/1")
    fleet = project.start(project.write([route("cl", workers, "handlers.chaos:crashy")],
                                        fleet={"poison_crashes": 100}))
    wait_until(lambda: subscribed(fleet, "cl", workers), 30, f"{workers} subscribed workers")
    sink = DeadLetters(fleet)
    pub = Publisher(fleet, "cl", rate=rate)
    faults: list[Fault] = []
    facts: dict = {}
    try:
        t_start = time.time()
        t0 = time.monotonic()
        pub.start()
        w = wait_until(lambda: (x := worker(fleet, "cl/1")) and x.state is WorkerState.CRASHLOOP and x, 60,
                       "cl/1 to be in crashloop")
        facts["to_crashloop"] = time.monotonic() - t0
        facts["reason"] = w.reason
        # the engine then runs a release-only process that unsubscribes the slot's session; it has no pid in
        # the snapshot, so look at the slot itself (private, but this is a fault-injection test)
        try:
            wait_until(lambda: any(r.source == "cl/1" and "session released" in r.message
                                   for r in fleet.logs_since(0)), 60, "the release of cl/1's session")
        except AssertionError as exc:
            seen = [f"{r.source}: {r.message}" for r in fleet.logs_since(0) if r.source in ("cl/1", "fleet")]
            raise AssertionError(f"{exc}; last records: {seen[-12:]}") from None
        facts["to_released"] = time.monotonic() - t0
        f = Fault("after crashloop cl/1", time.time(), recover=facts["to_released"],
                  note=f"crashloop after {facts['to_crashloop']:.2f}s, released after {facts['to_released']:.2f}s")
        faults.append(f)
        restarts = worker(fleet, "cl/1").restarts
        pids = {x.id: x.pid for x in fleet.snapshot().workers_of("cl")}
        time.sleep(after)  # keep publishing with the slot out; not a correctness wait
        snap = fleet.snapshot()
        facts["restarts_before"], facts["restarts_after"] = restarts, worker(fleet, "cl/1").restarts
        facts["state_after"] = worker(fleet, "cl/1").state
        facts["others_unchanged"] = all(x.pid == pids[x.id] for x in snap.workers_of("cl") if x.id != "cl/1")
        log(f"  crashloop: {f.note}; restarts {restarts} -> {facts['restarts_after']}")
    finally:
        result = _finish(project, pub, sink, "cl", faults, t_start, fleet, quiet=4.0, timeout=40.0)
        sink.close()
    facts["dead_errors"] = collections.Counter(e.split(":")[0] for (r, _), e in sink.errors.items() if r == "cl")
    result.rows[0].asserted = False
    result.rows[0].note = f"published before the release; dead letters by error: {dict(facts['dead_errors'])}"
    return result, facts


def poison(project: ChaosProject, *, rate: float = 300.0, workers: int = 2, count: int = 900,
           poison_seq: int = 301, log: Callable[[str], None] = print) -> tuple[Result, dict]:
    """A message that kills its worker process; it must be dead-lettered after fleet.poison_crashes crashes."""
    assert poison_seq % FAIL_EVERY
    fleet = project.start(project.write([route("p", workers)], fleet={"poison_crashes": 3}))
    wait_until(lambda: subscribed(fleet, "p", workers), 30, f"{workers} subscribed workers")
    sink = DeadLetters(fleet)
    pub = Publisher(fleet, "p", rate=rate, limit=count,
                    extra=lambda s: {"exit": True} if s == poison_seq else {})
    facts: dict = {}
    faults: list[Fault] = []
    try:
        t_start = time.time()
        pub.start()
        wait_until(lambda: poison_seq in pub.sent, 30, "the poison message to be published")
        f = Fault(f"poison seq {poison_seq}", pub.sent[poison_seq][0])
        faults.append(f)
        t0 = time.monotonic()
        wait_until(lambda: sink.seqs("p").get(poison_seq), 60, "the poison message on the dead-letter topic")
        f.recover = time.monotonic() - t0
        victim = wait_until(lambda: [w for w in fleet.snapshot().workers_of("p") if w.restarts], 10,
                            "the crashed slot")[0]
        wait_until(lambda: (x := worker(fleet, victim.id)).state is WorkerState.SUBSCRIBED and x.pid, 30,
                   f"{victim.id} to serve again")
        w = worker(fleet, victim.id)
        facts.update(worker=w.id, restarts=w.restarts, state=w.state, error=sink.errors[("p", poison_seq)],
                     poison_crashes=fleet.config.fleet.poison_crashes,
                     events=[r.message for r in fleet.logs_since(0) if r.source == w.id and "crashed the worker"
                             in r.message])
        f.note = f"dead-lettered after {w.restarts} crashes of {w.id}; slot {w.state.value}"
        log(f"  poison: {f.note} in {f.recover:.2f}s")
        wait_until(lambda: pub.next_seq >= count, 30, "the publisher to finish")
    finally:
        result = _finish(project, pub, sink, "p", faults, t_start, fleet)
        sink.close()
    return result, facts


# --------------------------------------------------------------------------- a password-protected broker
class AuthBroker:
    """A Mosquitto of our own on a free loopback port that only accepts chaos/secret."""

    USER, PASSWORD = "chaos", "secret"

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "authbroker"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.dir / "mosquitto.log"
        pw = self.dir / "passwd"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), self.USER, self.PASSWORD], check=True,
                       capture_output=True)
        conf = self.dir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
                        f"persistence false\nlog_dest file {self.log}\nlog_type all\nconnection_messages true\n"
                        # as root Mosquitto would switch to the 'mosquitto' user, who cannot read our temp dir
                        + ("user root\n" if os.geteuid() == 0 else ""))
        binary = next(p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "mosquitto")
                      if p == "mosquitto" or os.access(p, os.X_OK))
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._listening, 10, "the password-protected Mosquitto")

    def _listening(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def refusals(self) -> int:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for ln in text.splitlines() if "not authorised" in ln)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
