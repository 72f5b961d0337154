"""Prometheus metrics for a fleet: a custom collector over :class:`FleetSnapshot`.

Never prometheus-client's multiprocess mode: it cannot export per-worker CPU or
memory and leaves files behind on every worker restart.  The supervisor already
holds every figure in its snapshot, so one collector turns the latest snapshot
into metric families at scrape time.

Conventions: ``rmqtui_`` prefix, base units (seconds, bytes), ``_total``
counters, labels ``route`` and ``worker`` (the slot id such as ``sensors/0``,
stable across restarts; the pid appears only in ``rmqtui_worker_info``).  No
topic or payload ever becomes a label.  Per-slot counters stay monotonic across
worker restarts and slot re-creation: the collector remembers the last value it
exported per slot and continues from there when a counter starts again from 0.
"""

from __future__ import annotations

import platform
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.exposition import generate_latest

from .. import __version__
from .broker_sys import BrokerStats
from .protocol import DURATION_BOUNDS
from .skew import share_skew
from .snapshot import BrokerState, FleetSnapshot, WorkerSnapshot, WorkerState

PREFIX = "rmqtui_"
WORKER_LABELS = ("route", "worker")


class MonotonicCounters:
    """Keeps exported per-slot counters from ever going backwards.

    A counter that drops (a slot removed and added again) or whose ``epoch``
    changes (a per-process figure such as CPU time, under a new pid) is taken to
    have restarted from zero: the value exported before becomes an offset added
    to everything that follows.
    """

    def __init__(self) -> None:
        # (family, slot) -> (offset, last raw, epoch of the last raw)
        self._state: dict[tuple[str, str], tuple[float, float, object]] = {}
        self._lock = threading.Lock()

    def value(self, family: str, slot: str, raw: float, epoch: object = None) -> float:
        """The monotonic value of ``family`` for ``slot`` given the snapshot's ``raw`` value."""
        key = (family, slot)
        with self._lock:
            offset, last, last_epoch = self._state.get(key, (0.0, 0.0, epoch))
            if raw < last or epoch != last_epoch:
                offset += last
            self._state[key] = (offset, raw, epoch)
            return offset + raw


#: Counters read straight from a worker snapshot: (family suffix, attribute, help).  All but CPU
#: time are kept per slot by the supervisor; CPU time is per process (see ``_PER_PROCESS``).
_WORKER_COUNTERS = (
    ("worker_messages_received", "received", "Messages delivered to the worker by the broker."),
    ("worker_messages_handled", "handled", "Messages the handler completed."),
    ("worker_messages_failed", "failed", "Messages whose handler raised after every retry."),
    ("worker_messages_dead_lettered", "dead_lettered", "Messages published to the dead-letter topic."),
    ("worker_messages_redelivered", "redelivered",
     "Messages the broker delivered again (DUP flag): sent before and not acknowledged, e.g. after a restart."),
    ("worker_handler_seconds", "handler_seconds", "Time spent inside the handler."),
    ("worker_restarts", "restarts", "Times the slot's process was started again."),
    ("worker_cpu_seconds", "cpu_seconds", "CPU time (user + system) of the slot's processes."),
)

_PER_PROCESS = frozenset({"cpu_seconds"})

#: Gauges read from a worker snapshot (None = not known, then the sample is left out).
_WORKER_GAUGES = (
    ("worker_resident_memory_bytes", "rss", "Resident set size of the worker process."),
    ("worker_unique_memory_bytes", "uss", "Unique set size: memory only this process uses."),
    ("worker_open_fds", "fds", "Open file descriptors of the worker process."),
    ("worker_threads", "threads", "Threads of the worker process."),
    ("worker_in_flight", "in_flight", "Messages inside the handler right now."),
)


@dataclass(frozen=True, slots=True)
class RouteRecommendation:
    """What the autoscaler thinks a route needs (exported as metrics; see ``autoscale.py``)."""

    route: str
    mode: str  # "off" | "suggest" | "on"
    recommended: int
    reason: str  # a stable code ("busy", "calm", "cpu-bound", ...): a label must not change every second
    pinned: bool = False


class FleetCollector:
    """A prometheus-client collector that renders the latest fleet snapshot at each scrape."""

    def __init__(self, snapshot: Callable[[], FleetSnapshot],
                 broker_stats: Callable[[], BrokerStats | None] | None = None,
                 recommendations: Callable[[], Iterable[RouteRecommendation]] | None = None) -> None:
        self._snapshot = snapshot
        self._broker_stats = broker_stats
        self._recommendations = recommendations
        self.counters = MonotonicCounters()
        self._previous: FleetSnapshot | None = None  # the snapshot of the last scrape, for the share skew
        self._collect_lock = threading.Lock()

    def describe(self):
        """Nothing up front: families depend on the fleet, so registration must not call collect()."""
        return []

    def collect(self):
        """Every rmqtui metric family for the latest snapshot.

        One scrape at a time: the HTTP server is threaded, and two scrapes that fed
        the counters snapshots out of order would look like a counter reset.
        """
        with self._collect_lock:
            snap = self._snapshot()
            families = [*self._fleet(snap), *self._routes(snap), *self._workers(snap), *self._broker(snap)]
            if self._recommendations is not None:
                families += self._autoscale(list(self._recommendations()))
            return families

    def _fleet(self, snap: FleetSnapshot):
        info = InfoMetricFamily(PREFIX + "build", "rmqtui version and Python it runs on.")
        info.add_metric([], {"version": __version__, "python": platform.python_version()})
        yield info
        start = GaugeMetricFamily(PREFIX + "fleet_start_time_seconds", "Unix time the fleet started.")
        start.add_metric([], snap.started)
        yield start
        if snap.supervisor_rss is not None:
            rss = GaugeMetricFamily(PREFIX + "supervisor_resident_memory_bytes",
                                    "Resident set size of the supervisor process.")
            rss.add_metric([], snap.supervisor_rss)
            yield rss

    def _routes(self, snap: FleetSnapshot):
        info = InfoMetricFamily(PREFIX + "route", "Route settings: topic pattern, share group, QoS.",
                                labels=["route"])
        desired = GaugeMetricFamily(PREFIX + "route_desired_workers", "Workers the route should have.",
                                    labels=["route"])
        by_state = GaugeMetricFamily(PREFIX + "route_workers", "Worker slots of the route by state.",
                                     labels=["route", "state"])
        skew = GaugeMetricFamily(PREFIX + "route_share_skew",
                                 "Max over mean of messages received per live worker since the last scrape, "
                                 "minus 1 (0 = even spread).", labels=["route"])
        previous, self._previous = self._previous, snap
        for r in snap.routes:
            group = _share_group(r.filter) if r.shared else ""
            info.add_metric([r.name], {"pattern": r.topic, "group": group, "qos": str(r.qos),
                                       "shared": "true" if r.shared else "false"})
            desired.add_metric([r.name], r.desired)
            counts = {s: 0 for s in WorkerState}
            for w in snap.workers_of(r.name):
                counts[w.state] += 1
            for state, n in counts.items():
                by_state.add_metric([r.name, state.value], n)
            value = share_skew(previous, snap, r.name) if previous is not None else None
            if value is not None:
                skew.add_metric([r.name], value)
        yield from (info, desired, by_state, skew, self._durations(snap))

    def _durations(self, snap: FleetSnapshot) -> HistogramMetricFamily:
        """Per route: how long handler calls took, summed over its workers (and monotonic like the rest)."""
        family = HistogramMetricFamily(PREFIX + "route_handler_duration_seconds",
                                       "Handler call durations, summed over the route's workers.", labels=["route"])
        for r in snap.routes:
            workers = snap.workers_of(r.name)
            raw = [0] * (len(DURATION_BOUNDS) + 1)
            for w in workers:
                for i, n in enumerate(w.handler_durations[:len(raw)]):
                    raw[i] += n
            buckets, total = [], 0.0
            for i, bound in enumerate((*DURATION_BOUNDS, float("inf"))):
                total += self.counters.value(f"duration:{i}", r.name, float(raw[i]))
                buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", total))
            seconds = self.counters.value("duration:sum", r.name, sum(w.handler_seconds for w in workers))
            family.add_metric([r.name], buckets, seconds)
        return family

    def _workers(self, snap: FleetSnapshot):
        info = InfoMetricFamily(PREFIX + "worker", "The slot's current process and MQTT client id.",
                                labels=list(WORKER_LABELS))
        up = GaugeMetricFamily(PREFIX + "worker_up", "1 while the slot has a live process.",
                               labels=list(WORKER_LABELS))
        start = GaugeMetricFamily(PREFIX + "worker_start_time_seconds",
                                  "Unix time the slot's current process started.", labels=list(WORKER_LABELS))
        counters = [CounterMetricFamily(PREFIX + name, doc, labels=list(WORKER_LABELS))
                    for name, _, doc in _WORKER_COUNTERS]
        gauges = [GaugeMetricFamily(PREFIX + name, doc, labels=list(WORKER_LABELS)) for name, _, doc in _WORKER_GAUGES]
        for w in snap.workers:
            labels = [w.route, w.id]
            info.add_metric(labels, {"pid": str(w.pid or ""), "client_id": w.client_id, "state": w.state.value})
            up.add_metric(labels, 1 if w.pid is not None else 0)
            if w.started is not None and w.pid is not None:
                start.add_metric(labels, w.started)
            for family, (name, attr, _) in zip(counters, _WORKER_COUNTERS):
                raw = getattr(w, attr, None)
                if raw is not None:
                    epoch = w.pid if attr in _PER_PROCESS else None
                    family.add_metric(labels, self.counters.value(name, w.id, float(raw), epoch))
            for family, (_, attr, _) in zip(gauges, _WORKER_GAUGES):
                value = getattr(w, attr, None)
                if value is not None:
                    family.add_metric(labels, value)
        yield from (info, up, start, *counters, *gauges, *self._by_reason(snap))

    def _by_reason(self, snap: FleetSnapshot):
        """Dead letters and restarts of each slot split by why (per-slot monotonic, like every counter)."""
        labels = [*WORKER_LABELS, "reason"]
        dead = CounterMetricFamily(PREFIX + "worker_dead_letters", "Dead letters by reason: handler_error (raised "
                                   "after every retry) or poison (crashed the process repeatedly).", labels=labels)
        restarts = CounterMetricFamily(PREFIX + "worker_restarts_by_reason",
                                       "Restarts of the slot's process by exit cause (killed from outside, "
                                       "crashed, hung, killed by the operator, ...).", labels=labels)
        for w in snap.workers:
            for reason, raw in (("handler_error", w.dead_lettered - w.poisoned), ("poison", w.poisoned)):
                dead.add_metric([w.route, w.id, reason], self.counters.value(f"dead:{reason}", w.id, float(raw)))
            for reason, raw in w.restarts_by_reason:
                restarts.add_metric([w.route, w.id, reason],
                                    self.counters.value(f"restarts:{reason}", w.id, float(raw)))
        yield from (dead, restarts)

    def _broker(self, snap: FleetSnapshot):
        b = snap.broker
        info = InfoMetricFamily(PREFIX + "broker", "The broker the fleet uses.")
        info.add_metric([], {"address": b.address, "embedded": "true" if b.embedded else "false",
                             "protocol": b.protocol, "state": b.state.value})
        yield info
        up = GaugeMetricFamily(PREFIX + "broker_up", "1 while the broker answers.")
        up.add_metric([], 1 if b.state is BrokerState.UP else 0)
        yield up
        restarts = CounterMetricFamily(PREFIX + "broker_restarts", "Restarts of the embedded broker.")
        restarts.add_metric([], self.counters.value("broker_restarts", "", float(b.restarts)))
        yield restarts
        stats = self._broker_stats() if self._broker_stats is not None else None
        if stats is None:
            return
        for name, value, doc in (
                ("broker_store_messages", stats.store_messages, "Messages in the broker's store ($SYS)."),
                ("broker_retained_messages", stats.retained_messages, "Retained messages on the broker ($SYS)."),
                ("broker_clients_connected", stats.clients_connected, "Clients connected to the broker ($SYS)."),
                ("broker_clients", stats.clients_total,
                 "Clients the broker knows, with disconnected persistent sessions ($SYS)."),
                ("broker_subscriptions", stats.subscriptions, "Subscriptions on the broker ($SYS).")):
            if value is not None:
                family = GaugeMetricFamily(PREFIX + name, doc)
                family.add_metric([], value)
                yield family

    def _autoscale(self, recs: list[RouteRecommendation]):
        count = GaugeMetricFamily(PREFIX + "autoscale_recommended_workers",
                                  "Workers the autoscaler recommends for the route.", labels=["route", "mode"])
        info = InfoMetricFamily(PREFIX + "autoscale", "The rule behind the autoscaler's latest recommendation.",
                                labels=["route"])
        for rec in recs:
            count.add_metric([rec.route, rec.mode], rec.recommended)
            info.add_metric([rec.route], {"mode": rec.mode, "reason": rec.reason,
                                          "pinned": "true" if rec.pinned else "false"})
        yield from (count, info)


def _share_group(filter: str) -> str:
    """``$share/<group>/...`` -> group."""
    parts = filter.split("/", 2)
    return parts[1] if len(parts) > 2 and parts[0] == "$share" else ""


# ------------------------------------------------------------------ settings and server

@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``[metrics]`` of routemq.toml: where to serve ``/metrics`` (None = not served)."""

    host: str = "127.0.0.1"
    port: int | None = None


class MetricsSettingsError(ValueError):
    """``[metrics]`` is malformed; the message names the key and the fix."""


def parse_metrics_settings(doc: Mapping) -> MetricsSettings:
    """Read ``[metrics] listen`` from the raw TOML document.

    ``listen = 9464`` or ``"9464"`` serves on 127.0.0.1; ``"HOST:PORT"`` on that
    address (the endpoint has no authentication, so loopback is the default).
    """
    table = doc.get("metrics", {})
    if not isinstance(table, Mapping):
        raise MetricsSettingsError("[metrics] must be a table; write `[metrics]` and `listen = 9464` below it")
    unknown = sorted(set(table) - {"listen"})
    if unknown:
        raise MetricsSettingsError(f"[metrics] has unknown key(s) {', '.join(unknown)}; the only key is `listen`")
    listen = table.get("listen")
    if listen is None or listen == "":
        return MetricsSettings()
    fix = 'write `listen = 9464` (loopback) or `listen = "127.0.0.1:9464"`'
    if isinstance(listen, bool) or not isinstance(listen, (int, str)):
        raise MetricsSettingsError(f"[metrics] listen must be a port or \"HOST:PORT\", not {listen!r}; {fix}")
    host, _, port_text = str(listen).rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise MetricsSettingsError(f"[metrics] listen {listen!r} has no port number; {fix}") from None
    if not 0 < port < 65536:
        raise MetricsSettingsError(f"[metrics] listen port {port} is out of range 1-65535; {fix}")
    return MetricsSettings(host=host, port=port)


class MetricsServer:
    """Serves ``/metrics`` for one fleet over HTTP on a daemon thread."""

    def __init__(self, collector: FleetCollector, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self.host = host
        self.port = port
        self._server = None
        self._thread = None

    def start(self) -> None:
        """Bind and serve (port 0 picks a free one; :attr:`port` then says which)."""
        self._server, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        self.port = self._server.server_address[1]

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def render(self) -> bytes:
        """The exposition text without HTTP (for ``rmqtui ctl metrics``)."""
        return generate_latest(self.registry)
