"""Restart policy and the named timeouts of the watchdog: pure arithmetic, no clock.

Two kinds of unexpected exit are told apart, because they call for opposite answers:

- *killed from outside while healthy*: a signal ended a worker that had subscribed (an OOM
  killer, an operator's ``kill -9``, a node under pressure).  The handler is not at fault, so
  the slot restarts at once and the exit never counts toward a crash loop;
- *broken*: an exit during start-up, a non-zero status, a hang, the poison path.  These back
  off exponentially with jitter up to a cap; repeated ones within a window mark a crash loop,
  and the slot keeps retrying at the capped delay (like Kubernetes' CrashLoopBackOff) instead
  of giving up for good.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitKind(str, enum.Enum):
    """Why a worker process ended, as far as the restart policy is concerned."""

    EXTERNAL = "external"  # a signal from outside after the worker was serving
    BROKEN = "broken"  # start-up failure, error status, hang, poison
    FAILED = "failed"  # EXIT_FAILED: the handler cannot load; wait for the operator


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Backoff, crash window and the watchdog's named timeouts (seconds)."""

    crash_window: float = 30.0  # broken exits within this window count toward a crash loop
    crashloop_after: int = 5  # broken exits within crash_window that make a crash loop
    base_backoff: float = 0.25  # delay after the first broken exit; doubles each time
    max_backoff: float = 60.0  # the cap; a crash-looping slot retries this often, for ever
    jitter: float = 0.1  # +/- this fraction, so crash-looping slots do not retry in lock step
    external_delay: float = 0.1  # restart delay after a kill from outside
    spawn_retry: float = 2.0  # after the OS refused to start a process
    hang_timeout: float = 30.0  # no heartbeat, or one message in the handler, this long = hung
    drain_timeout: float = 10.0  # what a draining worker is given to finish (sent in Drain)
    drain_term_grace: float = 5.0  # past drain_timeout + this, SIGTERM
    drain_kill_grace: float = 3.0  # and past that + this, SIGKILL
    release_timeout: float = 15.0  # a release client without progress (a heartbeat) this long is killed
    poison_crashes: int = 3  # crashes in a row on one message make it poison

    @property
    def drain_term_after(self) -> float:
        """Seconds after a drain or stop request at which the worker gets SIGTERM."""
        return self.drain_timeout + self.drain_term_grace

    @property
    def drain_kill_after(self) -> float:
        """Seconds after a drain or stop request at which the worker gets SIGKILL."""
        return self.drain_term_after + self.drain_kill_grace

    @property
    def drain_silence_limit(self) -> float:
        """Heartbeat silence that marks a draining worker stuck (it may not beat while it drains)."""
        return max(self.hang_timeout, self.drain_timeout)

    def backoff(self, recent: int, spread: float = 0.5) -> float:
        """Delay before restart after ``recent`` broken exits in the window.

        ``spread`` in [0, 1] picks a point in the jitter band (0.5 = no jitter); the caller
        passes a random number, so this function stays deterministic for tests.
        """
        raw = min(self.max_backoff, self.base_backoff * 2 ** max(0, recent - 1))
        return min(self.max_backoff, raw * (1.0 + self.jitter * (2.0 * spread - 1.0)))

    def is_crash_loop(self, recent: int) -> bool:
        """Whether ``recent`` broken exits in the window make a crash loop."""
        return recent >= self.crashloop_after

    @staticmethod
    def classify(code: int | None, *, subscribed: bool, failed_code: int, hung: bool = False) -> ExitKind:
        """Sort an exit: a signal after the worker was serving is external; the rest is broken."""
        if code == failed_code:
            return ExitKind.FAILED
        if code is not None and code < 0 and subscribed and not hung:
            return ExitKind.EXTERNAL
        return ExitKind.BROKEN


def policy_from(fleet) -> RestartPolicy:
    """The policy for a :class:`~rmqtui.engine.config.FleetConfig` (settings from the file)."""
    return RestartPolicy(hang_timeout=fleet.hang_timeout, drain_timeout=fleet.drain_timeout,
                         poison_crashes=fleet.poison_crashes)
