"""Autoscaling per route that suggests before it acts: ``autoscale = "off" | "suggest" | "on"``.

The decision core (:class:`RouteScaler`, :func:`route_signals`, :func:`backlog_growth`) is
pure: it reads no clock (``now`` comes from the snapshot), touches no process
or socket, and is unit-tested with a fake clock.  :class:`AutoscaleController`
is the thin edge: it reads snapshots from any :class:`FleetControl`, feeds the
core, and in ``on`` mode calls ``scale()`` and logs every decision.

The rules, from what is known to go wrong elsewhere:

- up fast: when the workers are busy above ``busy_up`` (handler seconds per
  second per worker) or the broker's store grows while they are busy, jump to
  the count that brings the busy fraction back to ``busy_target`` (at most
  double per step), then wait ``up_cooldown`` for the new workers to show;
- down slowly: one worker at a time, only after ``calm_window`` seconds below
  ``busy_down`` and only when the rest would stay below ``busy_up``; the
  supervisor drains the worker it removes, so nothing acknowledged is lost;
- never up a route with a crash-looping or failed slot (more copies of a broken
  handler do not help), nor when the host CPU is saturated ("CPU-bound: more
  workers will not help");
- a manual change of the count pins the route (Celery's trap: an autoscaler that
  fights the operator) until :meth:`AutoscaleController.unpin`.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Mapping, Sequence

from .snapshot import FleetSnapshot, WorkerState

log = logging.getLogger("rmqtui.autoscale")

MODES = ("off", "suggest", "on")
_BROKEN = frozenset({WorkerState.CRASHLOOP, WorkerState.FAILED})


@dataclass(frozen=True, slots=True)
class AutoscaleSettings:
    """Per-route keys of routemq.toml: ``autoscale``, ``min``, ``max``."""

    mode: str = "off"
    min: int = 1
    max: int = 1


@dataclass(frozen=True, slots=True)
class Policy:
    """Thresholds of the decision core (fractions are 0..1, times in seconds)."""

    busy_up: float = 0.75
    busy_target: float = 0.6
    busy_down: float = 0.3
    calm_window: float = 120.0
    up_cooldown: float = 10.0
    cpu_saturated: float = 0.9  # host CPU fraction above which more processes only queue for the CPU
    backlog_growth: float = 5.0  # broker store messages per second that count as a growing backlog
    window: float = 10.0  # seconds of snapshots the busy fraction and the backlog trend are measured over


@dataclass(frozen=True, slots=True)
class RouteSignals:
    """What the core needs about one route at one instant."""

    route: str
    shared: bool
    desired: int
    running: int
    busy: float | None  # mean busy fraction of the route's live workers over the window; None = unknown
    rate: float = 0.0  # handled messages per second
    in_flight: int = 0
    broken: str = ""  # id of a crash-looping or failed slot, if any
    backlog_growth: float | None = None  # broker store messages per second over the window
    host_cpu: float | None = None  # 0..1 of all cores


@dataclass(frozen=True, slots=True)
class Decision:
    """One answer of the core: the recommended count, the action and the reason in words."""

    route: str
    mode: str
    time: float
    current: int
    recommended: int
    action: str  # "up", "down" or "hold"
    code: str  # the rule that decided, stable for dashboards: "busy", "calm", "cpu-bound", "pinned", ...
    reason: str  # the same in words, with the figures
    pinned: bool = False
    applied: bool = False  # set by the controller when ``scale()`` accepted it


@dataclass
class RouteScaler:
    """The decision state of one route. Pure: every method takes ``now``; nothing reads a clock."""

    settings: AutoscaleSettings
    policy: Policy = field(default_factory=Policy)
    pinned: bool = False
    pin_reason: str = ""
    expected: int | None = None  # the desired count we last saw or set
    pending: int | None = None  # a count we asked for that the snapshot does not show yet
    previous: int | None = None  # the count before ``pending``
    last_up: float = -math.inf
    calm_since: float | None = None

    def decide(self, s: RouteSignals, now: float) -> Decision:
        """The recommendation for ``s`` at ``now`` (does not assume it will be applied)."""
        mode = self.settings.mode
        self._notice_manual_change(s.desired)

        def to(target: int, code: str, reason: str) -> Decision:
            return self._decision(s, now, target, code, reason)

        if mode == "off":
            return to(s.desired, "off", "autoscale is off")
        if not s.shared:
            return to(s.desired, "not-shared", "not shared: a second worker would duplicate every message")
        if s.desired == 0:
            return to(0, "paused", "paused (scaled to 0): the broker queues for it; scale it up to resume")
        if self.pinned and mode == "on":
            return to(s.desired, "pinned", f"pinned: {self.pin_reason}; unpin to resume")
        lo, hi = self.settings.min, self.settings.max
        if s.desired < lo:
            return to(lo, "below-min", f"below min {lo}")
        if s.desired > hi:
            return to(hi, "above-max", f"above max {hi}")
        if s.busy is None:
            return to(s.desired, "measuring", "measuring: no busy figure yet")
        p = self.policy
        busy = f"busy {s.busy:.0%}"
        growing = s.backlog_growth is not None and s.backlog_growth > p.backlog_growth and s.busy >= p.busy_down
        if s.busy >= p.busy_up or growing:
            self.calm_since = None
            why = busy + (f", broker backlog +{s.backlog_growth:.0f}/s" if growing else "")
            if s.broken:
                return to(s.desired, "broken-slot",
                          f"{why}, but {s.broken} is crash-looping or failed: fix it first, more copies will not help")
            if s.host_cpu is not None and s.host_cpu >= p.cpu_saturated:
                return to(s.desired, "cpu-bound",
                          f"{why}, but host CPU is {s.host_cpu:.0%}: CPU-bound, more workers will not help")
            if s.desired >= hi:
                return to(s.desired, "at-max", f"{why}, at max {hi}")
            if now - self.last_up < p.up_cooldown or s.running < s.desired:
                return to(s.desired, "cooldown", f"{why}, waiting for the last step to take effect")
            wanted = math.ceil(s.desired * max(s.busy, p.busy_up) / p.busy_target)
            target = min(hi, max(s.desired + 1, min(wanted, 2 * max(1, s.desired))))
            return to(target, "busy" if s.busy >= p.busy_up else "backlog", why)
        if s.busy < p.busy_down and not growing and s.desired > lo:
            if self.calm_since is None:
                self.calm_since = now
            calm = now - self.calm_since
            if calm < p.calm_window:
                return to(s.desired, "calm-wait", f"{busy}, calm for {calm:.0f} of {p.calm_window:.0f} s")
            if s.busy * s.desired / (s.desired - 1) >= p.busy_up:
                return to(s.desired, "hold-busy", f"{busy}, one worker less would be too busy")
            return to(s.desired - 1, "calm", f"{busy}, calm for {calm:.0f} s")
        self.calm_since = None
        return to(s.desired, "steady", f"steady: {busy}")

    def applied(self, count: int, now: float) -> None:
        """The controller changed the count to ``count``: start the cool-down or the next calm window."""
        before = self.expected if self.expected is not None else count
        if count > before:
            self.last_up = now
        self.calm_since = now if count < before else None
        self.previous, self.pending = before, count

    def unpin(self) -> None:
        """Let the autoscaler act on the route again."""
        self.pinned, self.pin_reason, self.calm_since = False, "", None

    def _notice_manual_change(self, desired: int) -> None:
        if self.pending is not None:
            if desired == self.previous:
                return  # our own change is not in the snapshot yet
            if desired == self.pending:
                self.pending, self.expected = None, desired
                return
            self.pending = None  # someone else changed it meanwhile
        if self.expected is not None and desired != self.expected and self.settings.mode == "on":
            self._pin(desired)
        self.expected = desired

    def _pin(self, desired: int) -> None:
        self.pinned, self.pin_reason = True, f"set to {desired} by hand (was {self.expected})"
        self.expected, self.pending, self.calm_since = desired, None, None

    def _decision(self, s: RouteSignals, now: float, target: int, code: str, reason: str) -> Decision:
        action = "up" if target > s.desired else "down" if target < s.desired else "hold"
        return Decision(route=s.route, mode=self.settings.mode, time=now, current=s.desired,
                        recommended=target, action=action, code=code, reason=reason, pinned=self.pinned)


def route_signals(old: FleetSnapshot, new: FleetSnapshot, route: str, *, backlog_growth: float | None = None,
                  host_cpu: float | None = None) -> RouteSignals | None:
    """The signals of ``route`` between two snapshots (``old`` about one window before ``new``)."""
    r = new.route(route)
    if r is None:
        return None
    dt = new.time - old.time
    before = {w.id: w for w in old.workers_of(route)}
    total, n = 0.0, 0
    for w in new.workers_of(route):
        prev = before.get(w.id)
        if w.pid is None or prev is None or dt <= 0:
            continue
        spent = max(0.0, w.handler_seconds - prev.handler_seconds)
        if w.in_flight and w.handled + w.failed == prev.handled + prev.failed:
            spent = dt  # inside one handler call for the whole window: it is not counted until it returns
        total += min(1.0, spent / dt)
        n += 1
    broken = next((w.id for w in new.workers_of(route) if w.state in _BROKEN), "")
    return RouteSignals(route=route, shared=r.shared, desired=r.desired, running=r.running,
                        busy=(total / n) if n else None, rate=r.rate,
                        in_flight=sum(w.in_flight for w in new.workers_of(route)), broken=broken,
                        backlog_growth=backlog_growth, host_cpu=host_cpu)


def backlog_growth(samples: Sequence[tuple[float, int]], min_span: float = 1.0) -> float | None:
    """Messages per second the broker's store grew by between the first and the last sample."""
    if len(samples) < 2 or samples[-1][0] - samples[0][0] < min_span:
        return None
    (t0, v0), (t1, v1) = samples[0], samples[-1]
    return (v1 - v0) / (t1 - t0)


def parse_autoscale(route: Mapping, where: str = "[[routes]]") -> AutoscaleSettings:
    """Read ``autoscale``, ``min`` and ``max`` from one raw ``[[routes]]`` table (ValueError with the fix).

    ``min`` defaults to 1 and ``max`` to the larger of ``workers`` and the number of CPU cores.
    """
    mode = route.get("autoscale", "off")
    if mode not in MODES:
        raise ValueError(f"{where} autoscale = {mode!r} is not one of off, suggest, on; "
                         f'write autoscale = "suggest" to see recommendations first')
    workers = route.get("workers", 1)
    values = {}
    for key, default in (("min", 1), ("max", max(workers if isinstance(workers, int) else 1, os.cpu_count() or 1))):
        value = route.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
            raise ValueError(f"{where} {key} = {value!r} must be a whole number of workers from 0 to 10000; "
                             f"write {key} = {default}")
        values[key] = value
    if values["min"] > values["max"]:
        raise ValueError(f"{where} min = {values['min']} is above max = {values['max']}; swap them")
    if mode != "off" and not route.get("shared", True) and values["max"] > 1:
        raise ValueError(f"{where} is not shared, so it runs one worker; remove autoscale or set shared = true")
    return AutoscaleSettings(mode=mode, **values)


class AutoscaleController:
    """Feeds the core from a :class:`~rmqtui.engine.api.FleetControl` and acts in ``on`` mode.

    ``host_cpu`` defaults to the host's real CPU (psutil, via ``stats``).  ``step()`` does one
    round (tests call it directly); ``start()`` runs it every
    ``interval`` seconds on a daemon thread.  Every decision that changes the
    recommendation or the pin, and every change applied, is logged and kept in
    :attr:`history` (newest last).
    """

    def __init__(self, fleet, settings: Mapping[str, AutoscaleSettings], *, policy: Policy | None = None,
                 broker_stats: Callable[[], object] | None = None, host_cpu: Callable[[], float | None] | None = None,
                 interval: float = 1.0, history: int = 500) -> None:
        self.fleet = fleet
        self.policy = policy or Policy()
        self.scalers = {name: RouteScaler(s, self.policy) for name, s in settings.items()}
        self._broker_stats = broker_stats
        if host_cpu is None:
            from .stats import host_cpu_fraction as host_cpu
        self._host_cpu = host_cpu
        self.interval = interval
        self.history: collections.deque[Decision] = collections.deque(maxlen=history)
        self._snaps: collections.deque[FleetSnapshot] = collections.deque()
        self._store: collections.deque[tuple[float, int]] = collections.deque()
        self._latest: dict[str, Decision] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run :meth:`step` every ``interval`` seconds until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="rmqtui-autoscale", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception:  # the loop must survive a bad round; the next one starts afresh
                log.exception("autoscale round failed")

    def step(self) -> list[Decision]:
        """One round: a snapshot, one decision per route, ``scale()`` for ``on`` routes that need it."""
        snap = self.fleet.snapshot()
        now, window = snap.time, self.policy.window
        _push(self._snaps, snap, now, window, lambda s: s.time)
        stats = self._broker_stats() if self._broker_stats else None
        store = getattr(stats, "store_messages", None)
        if store is not None:
            _push(self._store, (now, store), now, window, lambda s: s[0])
        growth = backlog_growth(self._store)
        cpu = self._host_cpu() if self._host_cpu else None
        out = []
        for name, scaler in self.scalers.items():
            signals = route_signals(self._snaps[0], snap, name, backlog_growth=growth, host_cpu=cpu)
            if signals is None:
                continue
            with self._lock:
                decision = scaler.decide(signals, now)
            if decision.mode == "on" and decision.action != "hold":
                result = self.fleet.scale(name, decision.recommended)
                if result.ok:
                    with self._lock:
                        scaler.applied(decision.recommended, now)
                    decision = replace(decision, applied=True)
                else:
                    decision = replace(decision, reason=f"{decision.reason}; scale refused: {result.message}")
            self._record(decision)
            out.append(decision)
        return out

    def _record(self, d: Decision) -> None:
        prev = self._latest.get(d.route)
        self._latest[d.route] = d
        advise = getattr(self.fleet, "advise", None)  # the in-process fleet shows it in every front end
        if callable(advise):
            advise(d.route, d.recommended, ("pinned: " if d.pinned else "") + d.reason)
        if d.applied or prev is None or (prev.action, prev.recommended, prev.pinned) != (d.action, d.recommended,
                                                                                         d.pinned):
            self.history.append(d)
            verb = "scaled" if d.applied else "recommends"
            log.info("autoscale %s %s: %s %d -> %d (%s)", d.mode, d.route, verb, d.current, d.recommended, d.reason)

    def unpin(self, route: str) -> bool:
        """Release a route pinned by a manual change; False when it is not autoscaled."""
        scaler = self.scalers.get(route)
        if scaler is None:
            return False
        with self._lock:
            scaler.unpin()
        return True

    def latest(self) -> dict[str, Decision]:
        """The newest decision per route."""
        return dict(self._latest)

    def state(self) -> list[dict]:
        """The newest decisions as plain dicts, for the TUI, ``--json`` and ``rmqtui ctl``."""
        return [asdict(d) for d in self._latest.values()]

    def recommendations(self) -> list:
        """The newest decisions in the shape the metrics collector exports."""
        from .metrics import RouteRecommendation

        return [RouteRecommendation(d.route, d.mode, d.recommended, d.code, d.pinned)
                for d in self._latest.values()]


def _push(buf: collections.deque, item, now: float, window: float, when: Callable) -> None:
    """Append ``item`` and keep one sample at least ``window`` old as the oldest."""
    buf.append(item)
    while len(buf) > 2 and when(buf[1]) <= now - window:
        buf.popleft()
