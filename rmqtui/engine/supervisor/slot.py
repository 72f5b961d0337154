"""One worker slot as an explicit state machine: events in, effects out, time passed in.

A slot has a stable client id (so a new process resumes the broker session of the
old one) and at most one process at a time.  Its :class:`Phase` says what the
supervisor is doing with it; :attr:`Slot.state` is what the operator sees (the
worker's own status, or the supervisor's verdict such as ``crashloop``).

Every method returns a list of effects (:class:`Spawn`, :class:`Signal`,
:class:`Send`, :class:`Note`); nothing here reads a clock or touches a process.
"""

from __future__ import annotations

import collections
import signal

from ..protocol import EXIT_FAILED, Drain, Heartbeat
from ..snapshot import WorkerState
from .policy import ExitKind, RestartPolicy
from ..snapshot import ExitRecord
from .effects import EXTRA_COUNTERS, Effect, Note, Phase, Send, Signal, Spawn, add_buckets, exit_cause, exit_words
from .rates import RateMeter

__all__ = ["Effect", "ExitRecord", "Note", "Phase", "Send", "Signal", "Slot", "Spawn", "exit_words"]


class Slot:
    """One slot of a route (see the module docstring)."""

    def __init__(self, route: str, index: int, client_id: str, log_level: str) -> None:
        self.route = route
        self.index = index
        self.id = f"{route}/{index}"
        self.client_id = client_id
        self.log_level = log_level
        self.phase = Phase.WAITING
        self.state = WorkerState.STARTING
        self.reason = ""
        self.pid: int | None = None
        self.hb: Heartbeat | None = None
        self.base = [0, 0, 0, 0, 0.0]  # received, handled, failed, dead-lettered, seconds of ended processes
        self.meter = RateMeter()
        self.restarts = 0
        self.crashes: collections.deque[float] = collections.deque(maxlen=32)  # broken exits (monotonic)
        self.streak = 0  # broken exits since a process last stayed up for a crash window
        self.crashloop = False
        self.next_start = 0.0
        self.retiring = False  # leaving the pool: drain or release, then GONE
        self.needs_release = False  # a release client is due at next_start
        self.release_failures = 0
        self.restart_requested = False
        self.subscribed = False  # the current process subscribed
        self.since = 0.0  # monotonic: when the current drain/stop/release began
        self.spawned_at = 0.0
        self.last_beat = 0.0
        self.started: float | None = None  # wall time the current process started
        self.last_exit: int | None = None
        self.kill_reason = ""
        self.hung = False
        self.term_sent = False
        self.kill_sent = False
        self.poison_counts: dict[int, int] = {}
        self.poison: set[int] = set()
        self.pausing = False  # its route is paused: the process stops keeping its session, then PAUSED
        self.exits: collections.deque[ExitRecord] = collections.deque(maxlen=5)  # the last exit causes
        self.extra_base: dict[str, int] = {}  # EXTRA_COUNTERS of ended processes
        self.durations_base: list[int] = []  # handler-duration buckets of ended processes
        self.restart_causes: dict[str, int] = {}  # restarts by exit cause, since the fleet started

    # ------------------------------------------------------------------ reading
    @property
    def has_process(self) -> bool:
        """A process (worker or release client) is alive or being started."""
        return self.phase in (Phase.STARTING, Phase.SERVING, Phase.STOPPING, Phase.DRAINING, Phase.RELEASING)

    @property
    def serving(self) -> bool:
        """Subscribed and healthy: a crash-looping or leaving slot does not count."""
        return self.phase is Phase.SERVING and not self.retiring and not self.crashloop

    @property
    def worker_pid(self) -> int | None:
        """The pid of a worker process (a release client is not shown as the slot's process)."""
        return None if self.phase is Phase.RELEASING else self.pid

    def totals(self) -> tuple[int, int, int, int, float]:
        """received, handled, failed, dead-lettered, handler seconds over every process of the slot."""
        b, hb = self.base, self.hb
        if hb is None:
            return b[0], b[1], b[2], b[3], b[4]
        return (b[0] + hb.received, b[1] + hb.handled, b[2] + hb.failed, b[3] + hb.dead_lettered,
                b[4] + hb.handler_seconds)

    def count(self, name: str) -> int:
        """A heartbeat counter (``redelivered``, ``poisoned``) over every process of the slot."""
        return self.extra_base.get(name, 0) + (getattr(self.hb, name, 0) if self.hb is not None else 0)

    def durations(self) -> tuple[int, ...]:
        """Handler calls per duration bucket over every process of the slot."""
        return add_buckets(self.durations_base, self.hb.durations if self.hb is not None else ())

    def _fold(self) -> None:
        if self.hb is not None:
            self.base = list(self.totals())
            self.extra_base = {name: self.count(name) for name in EXTRA_COUNTERS}
            self.durations_base = list(self.durations())
            self.hb = None

    # ------------------------------------------------------------- starting
    def start(self, now: float) -> list[Effect]:
        """Ask for a worker process (or the release client that is due)."""
        if self.needs_release:
            return self._release(now)
        self.phase = Phase.STARTING
        self.pid = None
        if not self.crashloop and self.state is not WorkerState.STOPPED:
            self.state, self.reason = WorkerState.STARTING, ""
        return [Spawn(self.id)]

    def spawned(self, pid: int, now: float, wall: float, policy: RestartPolicy, stopping: bool) -> list[Effect]:
        """The process of the last :class:`Spawn` runs as ``pid``."""
        self.pid = pid
        self.spawned_at = self.last_beat = now
        self.started = wall
        self.hb = None
        self.subscribed = self.hung = self.term_sent = self.kill_sent = False
        if self.phase is Phase.RELEASING:
            return []
        if self.retiring:
            return self._drain(now, policy)
        if stopping:
            return self.stop(now, policy)
        if self.pausing:
            self.pausing = False
            return self.pause(now, policy)
        return []

    def spawn_failed(self, error: str, now: float, policy: RestartPolicy) -> list[Effect]:
        """The OS refused to start a process: try again a little later."""
        self.needs_release = self.phase is Phase.RELEASING
        self.phase = Phase.WAITING
        self.pid = None
        self.next_start = now + policy.spawn_retry
        self.state, self.reason = WorkerState.BACKOFF, f"could not start a process: {error}"
        return [Note("ERROR", self.id, self.reason)]

    # --------------------------------------------------------- from worker
    def status(self, state: str, reason: str) -> list[Effect]:
        """The worker reported a state change."""
        if self.phase is Phase.RELEASING:
            return []  # the release client's states are not the slot's
        st = WorkerState(state)
        out: list[Effect] = []
        if st is WorkerState.SUBSCRIBED:
            self.subscribed = True
            if self.phase is Phase.STARTING:
                self.phase = Phase.SERVING
            if self.state is WorkerState.DISCONNECTED:
                out.append(Note("INFO", self.id, "reconnected and subscribed"))
        if self.phase in (Phase.DRAINING, Phase.STOPPING) and st not in (WorkerState.FAILED, WorkerState.STOPPED):
            st = WorkerState.DRAINING
            reason = self.reason
        if st in (WorkerState.FAILED, WorkerState.DISCONNECTED) and reason != self.reason:
            out.append(Note("ERROR" if st is WorkerState.FAILED else "WARNING", self.id, reason))
        self.state, self.reason = st, reason
        return out

    def heartbeat(self, hb: Heartbeat, now: float) -> None:
        """A heartbeat arrived from the worker."""
        self.hb = hb
        self.last_beat = now
        self.meter.update(hb.time, self.totals()[1])

    # ------------------------------------------------------------ commands
    def retire(self, now: float, policy: RestartPolicy) -> list[Effect]:
        """Leave the pool: drain a live worker, release the session of a dead one."""
        if self.retiring:
            return []
        self.retiring = True
        if self.phase in (Phase.STARTING, Phase.SERVING):
            return self._drain(now, policy) if self.pid is not None else []  # spawned() drains it
        if self.phase in (Phase.WAITING, Phase.FAILED, Phase.PAUSED):
            # its process is dead, its session may still be subscribed: release it first
            return self._release(now)
        return []  # stopping, draining or releasing: the exit decides

    def stop(self, now: float, policy: RestartPolicy) -> list[Effect]:
        """The fleet stops: finish the message in hand and disconnect keeping the session."""
        if self.phase in (Phase.STARTING, Phase.SERVING) and self.pid is not None:
            self.phase, self.since = Phase.STOPPING, now
            self.term_sent = self.kill_sent = False
            self.state, self.reason = WorkerState.DRAINING, "fleet stopping: finishing the message in hand"
            return [Send(self.id, Drain(timeout=policy.drain_timeout, keep_session=True))]
        if self.phase in (Phase.WAITING, Phase.FAILED) and not self.retiring:
            self.state, self.reason = WorkerState.STOPPED, self.reason if self.phase is Phase.FAILED else ""
        return []

    def restart(self, now: float, policy: RestartPolicy) -> list[Effect]:
        """Operator restart: a live worker stops keeping its session and starts anew; a dead slot retries now."""
        if self.phase in (Phase.STARTING, Phase.SERVING) and self.pid is not None:
            self.restart_requested = True
            self.phase, self.since = Phase.STOPPING, now
            self.term_sent = self.kill_sent = False
            self.state, self.reason = WorkerState.DRAINING, "restarting: finishing the current message"
            return [Send(self.id, Drain(timeout=policy.drain_timeout, keep_session=True))]
        self.crashes.clear()
        self.streak = 0
        self.crashloop = False
        self.next_start = 0.0
        self.phase = Phase.WAITING
        self.state, self.reason = WorkerState.STARTING, "restart requested"
        return []

    def pause(self, now: float, policy: RestartPolicy) -> list[Effect]:
        """Its route is scaled to 0: stop like a fleet stop (keep the session, so the broker queues), then wait."""
        if self.pausing or self.phase is Phase.PAUSED or self.retiring:
            return []
        if self.phase in (Phase.STARTING, Phase.SERVING, Phase.STOPPING):
            self.pausing = True
            self.restart_requested = False
            if self.pid is None or self.phase is Phase.STOPPING:
                return []  # spawned() pauses it, or the stop in progress ends in PAUSED
            self.phase, self.since = Phase.STOPPING, now
            self.term_sent = self.kill_sent = False
            self.state, self.reason = WorkerState.DRAINING, "pausing: finishing the message in hand"
            return [Send(self.id, Drain(timeout=policy.drain_timeout, keep_session=True))]
        if self.phase in (Phase.WAITING, Phase.FAILED):
            self._paused()
        return []  # releasing: the next reconcile pauses it once the release client is done

    def _paused(self) -> None:
        self.phase, self.pausing = Phase.PAUSED, False
        self.state, self.reason = WorkerState.PAUSED, "route paused: the broker queues for its session"

    def resume(self, now: float) -> list[Effect]:
        """Its route is scaled up again: start the same client id, so the broker delivers what it queued."""
        if self.phase is Phase.PAUSED:
            self.crashes.clear()
            self.streak, self.crashloop = 0, False
            self.phase, self.next_start = Phase.WAITING, now
            self.state, self.reason = WorkerState.STARTING, "resuming its session"
        elif self.pausing:
            self.pausing = False
            if self.phase is Phase.STOPPING:
                self.restart_requested = True  # the stop in progress ends in a fresh start
        return []

    def _drain(self, now: float, policy: RestartPolicy) -> list[Effect]:
        self.phase, self.since = Phase.DRAINING, now
        self.term_sent = self.kill_sent = False
        self.state, self.reason = WorkerState.DRAINING, "removing: unsubscribed, finishing the backlog"
        return [Send(self.id, Drain(timeout=policy.drain_timeout)), Note("INFO", "fleet", f"{self.id}: draining")]

    def _release(self, now: float) -> list[Effect]:
        self.phase, self.since = Phase.RELEASING, now
        self.needs_release = False
        self.kill_sent = False
        if not self.crashloop:  # a crash loop keeps its reason on screen
            self.reason = "releasing its session to the live workers"
        return [Spawn(self.id, release=True)]

    # ------------------------------------------------------------- watchdog
    def tick(self, now: float, wall: float, policy: RestartPolicy) -> list[Effect]:
        """Hang detection and drain escalation for the slot's process."""
        pid = self.pid
        if pid is None:
            return []
        if self.phase in (Phase.DRAINING, Phase.STOPPING):
            waited = now - self.since
            silent = now - max(self.last_beat, self.since)
            if not self.kill_sent and (waited > policy.drain_kill_after or silent > policy.drain_silence_limit):
                self.kill_sent = True
                why = (f"no heartbeat for {silent:.0f}s" if silent > policy.drain_silence_limit
                       else f"still running {waited:.0f}s after the request")
                self.kill_reason = f"stuck while {self.phase.value}: {why}"
                return [Signal(self.id, pid, signal.SIGKILL),
                        Note("ERROR", self.id, f"{self.kill_reason}; killing pid {pid}")]
            if not self.term_sent and waited > policy.drain_term_after:
                self.term_sent = True
                return [Signal(self.id, pid, signal.SIGTERM),
                        Note("WARNING", self.id, f"{self.phase.value} for {waited:.0f}s; sending SIGTERM")]
            return []
        if self.phase is Phase.RELEASING:
            if not self.kill_sent and now - max(self.since, self.last_beat) > policy.release_timeout:
                self.kill_sent = True
                return [Signal(self.id, pid, signal.SIGKILL),
                        Note("WARNING", self.id, f"release client silent for {policy.release_timeout:.0f}s; "
                                                 f"killing it and trying again")]
            return []
        if self.hung:
            return []
        silent = now - self.last_beat
        busy = (wall - self.hb.busy_since) if self.hb is not None and self.hb.busy_since else 0.0
        limit = policy.hang_timeout
        if silent <= limit and busy <= limit:
            return []
        self.hung = True
        self.kill_reason = (f"hung: no heartbeat for {silent:.0f}s" if silent > limit
                            else f"hung: one message has been in the handler for {busy:.0f}s")
        self.state, self.reason = WorkerState.HUNG, self.kill_reason
        return [Signal(self.id, pid, signal.SIGKILL), Note("ERROR", self.id, f"{self.kill_reason}; killing pid {pid}")]

    # ------------------------------------------------------------------ exit
    def exited(self, code: int | None, tail: str, mid: int, now: float, policy: RestartPolicy, *,
               stopping: bool, others_serving: bool, spread: float = 0.5, wall: float | None = None) -> list[Effect]:
        """The slot's process ended with ``code`` (negative = signal); ``tail`` is its stderr's last line,
        ``mid`` the message it was handling (0 = none); the exit and its cause are kept in :attr:`exits`."""
        before = (self.phase, self.pausing, self.restart_requested, self.retiring, self.subscribed, self.hung,
                  self.kill_reason)
        restarts = self.restarts
        out = self._exited(code, tail, mid, now, policy, stopping=stopping, others_serving=others_serving,
                           spread=spread)
        cause = exit_cause(code, before, self.phase is Phase.GONE, stopping, policy)
        self.exits.append(ExitRecord(now if wall is None else wall, code, cause, tail))
        if self.restarts > restarts:  # counted as a restart: by cause too, for /metrics
            self.restart_causes[cause] = self.restart_causes.get(cause, 0) + 1
        return out

    def _exited(self, code: int | None, tail: str, mid: int, now: float, policy: RestartPolicy, *,
                stopping: bool, others_serving: bool, spread: float) -> list[Effect]:
        phase = self.phase
        self._fold()
        self.pid = None
        self.meter.reset()
        was_subscribed, self.subscribed = self.subscribed, False
        hung, self.hung = self.hung, False
        if phase is Phase.RELEASING:
            return self._release_ended(code, now, policy, spread)
        self.last_exit = code
        why = self.kill_reason or exit_words(code)
        self.kill_reason = ""
        if phase is Phase.DRAINING:
            clean = code == 0 and not self.term_sent and not self.kill_sent and now - self.since < policy.drain_timeout
            if clean:
                self.phase = Phase.GONE
                return [Note("INFO", "fleet", f"{self.id}: drained and removed (exit 0)")]
            return [Note("WARNING", self.id, f"{why} during its drain; releasing its session to the live workers")
                    ] + self._release(now)
        if stopping:
            self.phase = Phase.WAITING
            self.state, self.reason = WorkerState.STOPPED, f"exit {code}"
            if self.retiring:
                return self._release(now)
            kept = "its session is kept for the next start" if code == 0 else "its session stays with the broker"
            return [Note("INFO" if code == 0 else "WARNING", "fleet", f"{self.id}: stopped; {kept} (exit {code})")]
        if self.retiring:
            return [Note("WARNING", self.id, f"{why} while leaving the pool; releasing its session")
                    ] + self._release(now)
        if self.pausing:
            self._paused()
            return [Note("INFO" if code == 0 else "WARNING", "fleet",
                         f"{self.id}: paused; the broker keeps its session and queues for it (exit {code})")]
        if phase is Phase.STOPPING and self.restart_requested:
            self.restart_requested = False
            self.phase, self.next_start = Phase.WAITING, now
            self.state, self.reason = WorkerState.STARTING, "restarting"
            return []
        self.restart_requested = False
        return self._crashed(code, why, tail, mid, now, policy, was_subscribed, hung, others_serving, spread)

    def _release_ended(self, code: int | None, now: float, policy: RestartPolicy, spread: float) -> list[Effect]:
        if code == 0:
            self.release_failures = 0
            if self.retiring:
                self.phase = Phase.GONE
                return [Note("INFO", "fleet", f"{self.id}: left the share group; removed")]
            self.phase = Phase.WAITING  # a crash-looping slot: it retries at next_start
            return [Note("INFO", self.id, "session released to the live workers until the next retry")]
        self.release_failures += 1
        delay = policy.backoff(self.release_failures, spread)
        self.phase, self.needs_release, self.next_start = Phase.WAITING, True, now + delay
        return [Note("WARNING", self.id, f"release client {exit_words(code)}; retrying in {delay:.2g}s "
                                         f"(the slot stays until its subscription is gone)")]

    def _crashed(self, code, why, tail, mid, now, policy, was_subscribed, hung, others_serving, spread):
        out: list[Effect] = []
        if mid:
            count = self.poison_counts.get(mid, 0) + 1
            self.poison_counts = {mid: count}  # "in a row": another message resets the count
            if count >= policy.poison_crashes and mid not in self.poison:
                self.poison.add(mid)
                out.append(Note("ERROR", self.id, f"message mid {mid} crashed the worker {count} times in a row; "
                                                  f"it will be sent to the dead-letter topic"))
        kind = policy.classify(code, subscribed=was_subscribed, failed_code=EXIT_FAILED, hung=hung)
        self.phase = Phase.WAITING
        if kind is ExitKind.FAILED:
            self.phase = Phase.FAILED
            self.state = WorkerState.FAILED
            self.reason = self.reason or "the handler could not be loaded"
            return out
        self.restarts += 1
        if kind is ExitKind.EXTERNAL:
            self.next_start = now + policy.external_delay
            self.state, self.reason = WorkerState.CRASHED, f"{why}; restarting"
            return out + [Note("WARNING", self.id, f"{why} while serving; restarting")]
        if now - self.spawned_at >= policy.crash_window:
            self.streak, self.crashloop = 0, False  # it had been healthy for a whole window
        self.streak += 1
        self.crashes.append(now)
        recent = sum(1 for t in self.crashes if now - t <= policy.crash_window)
        delay = policy.backoff(self.streak, spread)
        self.next_start = now + delay
        detail = f"{why}" + (f": {tail}" if tail else "")
        if self.crashloop or policy.is_crash_loop(recent):
            first = not self.crashloop
            self.crashloop = True
            self.state = WorkerState.CRASHLOOP
            # short enough for an 80-column status line; the exit code is in last_exit, the full story in the log
            self.reason = f"{tail or why}; {self.streak} failures, retry in {delay:.2g}s"
            # reported once, by the fleet (front ends alert on fleet errors); later retries are warnings
            out.append(Note("ERROR", "fleet", f"{self.id}: crash loop: {recent} crashes in "
                                              f"{policy.crash_window:.0f}s, last {detail}; retrying with backoff "
                                              f"up to {policy.max_backoff:.0f}s (r retries now)") if first
                       else Note("WARNING", self.id, f"{detail}; still failing, retry in {delay:.2g}s"))
            if others_serving:
                # while it cannot run, its share goes to the live members and its backlog to them too
                out += self._release(now)
            return out
        self.state, self.reason = WorkerState.BACKOFF, f"{why}; restart in {delay:.2g}s"
        return out + [Note("WARNING", self.id, f"{why}" + (f" ({tail})" if tail else "") + f"; restarting in {delay:.2g}s")]
