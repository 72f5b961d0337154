"""Detach a TUI from the fleet it started, like tmux: the fleet keeps running headless.

The shell gives its prompt back only when the process it started exits, and the
workers and the broker die with the process that started them.  So a TUI that
may detach splits once, before any thread exists: the process the shell waits
for becomes a small *waiter* that touches no terminal, and its child runs the
fleet and the TUI as usual, in a session of its own.  The waiter passes every
signal on (a hangup once) and exits with the child's status; the child dies with
the waiter (``PR_SET_PDEATHSIG``), so nothing outlives rmqtui.

On detach the child points its standard streams away from the terminal and
tells the waiter (SIGUSR2), which exits 0; the child runs on headless until
``rmqtui ctl stop`` or a signal stops it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

_PR_SET_PDEATHSIG = 1
#: what the waiter handles itself; blocked before the split, the child unblocks them at once
_WAITED = {signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
           signal.SIGCHLD, signal.SIGWINCH}


def _death_signal(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return False
    return libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0


class Detacher:
    """The child's end: :meth:`detach` once the TUI has given the terminal back."""

    def __init__(self, waiter: int) -> None:
        self.waiter = waiter
        self.detached = False

    def detach(self, log_path: Path, message: str) -> None:
        """Print ``message``, leave the terminal for good and let the waiter exit 0.

        Standard input and output go to ``/dev/null``; standard error (warnings, a failed stop) is appended
        to ``log_path`` (0600)."""
        print(message, flush=True)
        _death_signal(0)  # from now on the fleet outlives the waiter on purpose
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, target in ((0, null), (1, null), (2, log)):
            os.dup2(target, fd)
        os.close(null)
        os.close(log)
        try:
            os.kill(self.waiter, signal.SIGUSR2)  # "detached": the waiter exits 0 and the shell prompt is back
        except ProcessLookupError:
            pass
        self.detached = True


def split() -> Detacher | None:
    """Split into waiter and child when detaching can work; returns in the child only.

    None (no split) without a terminal on both ends, off Linux, or once threads exist (forking
    then would copy locks held by other threads)."""
    if not (sys.platform.startswith("linux") and sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    if threading.active_count() > 1:
        return None
    waiter = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)  # none may slip past the waiter's sigwait
    child = os.fork()
    if child:
        _wait(child)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    # Out of the terminal's session at once: the terminal's signals reach the waiter only, which passes
    # each on exactly once.  In the terminal's process group the child would get a hangup twice (from the
    # kernel and from the shell's killpg) and take the second for "force"; and the fork server it starts
    # would die of a hangup after a detach, taking every worker with it.
    os.setsid()
    _death_signal(signal.SIGTERM)  # the waiter SIGKILLed: drain and stop, as on a hangup
    if os.getppid() != waiter:  # it died before the death signal was armed
        os._exit(1)
    return Detacher(waiter)


def _wait(child: int) -> NoReturn:
    """The waiter: exit 0 when the child detaches, else with the child's own status.

    Every signal meant for rmqtui is passed on to the child (a window size change too: the TUI there
    redraws); a hangup only once, since a closing terminal sends one from the kernel and another
    from the shell, and a second one means "force" to the child."""
    hung_up = False
    while True:
        info = signal.sigwaitinfo(_WAITED)
        sig = info.si_signo
        if sig == signal.SIGCHLD:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid == child:
                code = os.waitstatus_to_exitcode(status)
                os._exit(128 - code if code < 0 else code)
        elif sig == signal.SIGUSR2:
            if info.si_pid == child:
                os._exit(0)
        elif sig == signal.SIGHUP and hung_up:
            continue
        else:
            hung_up = hung_up or sig == signal.SIGHUP
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass
