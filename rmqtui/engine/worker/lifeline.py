"""Die with the parent: ``PR_SET_PDEATHSIG`` SIGKILL for workers and for the fork server.

A worker stuck in a handler, or stopped with SIGSTOP, never reads the end of
file on its pipe, so without this it would outlive a SIGKILLed supervisor.
libc is loaded here, at import time, because the fork server imports this
module before it forks: a child must not load a library while other threads of
its parent may hold the loader's locks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # not Linux: nothing to arm, the pipe's end of file still stops a healthy worker
    _libc = None

#: pid of the fork server that forks workers (set in the fork server itself, inherited by its children)
fork_server_pid: int | None = None


def arm(expected_parent: int | None) -> bool:
    """Ask the kernel to SIGKILL this process when its parent ends; exit now if it already has.

    The death signal fires when the parent *thread* that forked us ends, so it
    is only armed where that thread lives as long as the parent: the fork
    server's main loop, or the supervisor's engine thread.
    """
    if _libc is None or not sys.platform.startswith("linux"):
        return False
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)  # the parent died between fork and prctl: the signal will never come
    return True


def _running_as_fork_server() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "main" and code.co_filename.endswith(os.path.join("multiprocessing", "forkserver.py")):
            return True
        frame = frame.f_back
    return False


def arm_fork_server() -> bool:
    """Called at import: in the fork server (which imports the worker package as its preload),
    arm the death signal so the fork server, and through it every worker, ends with the supervisor.
    True in the fork server (the first time), so the caller sets the rest of it up."""
    global fork_server_pid
    if fork_server_pid is not None or not _running_as_fork_server():
        return False
    fork_server_pid = os.getpid()
    arm(None)
    # Out of the terminal's session: a hangup (a closed ssh session, a detached TUI's terminal closing)
    # or Ctrl-Z must reach the supervisor only, which drains the workers in order; killed by the
    # terminal, the fork server would take every worker with it (their death signal) without a drain.
    try:
        os.setsid()
    except OSError:  # already a group leader: not started by multiprocessing as we know it
        pass
    return True
