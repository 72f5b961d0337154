"""A spare worker process: started ahead of need, it waits for the spec of the slot it will serve.

The supervisor's runner keeps one (with the fork server).  Adding, restarting or
scaling up a slot then sends the spec down the spare's pipe instead of asking the
fork server for a process, so the fork, the unpickling of the process and the
interpreter's set-up are already behind the new worker.  Everything slot-specific
(its handler, its log file, its title, its broker connection) still happens in
:func:`.main.run`, after the spec arrives.
"""

from __future__ import annotations

import multiprocessing
from typing import Any, Callable

from ..protocol import WORKER_PROCESS_PREFIX
from . import lifeline


def wait_for_slot(target: Callable, conn: Any, current_mid: Any) -> None:
    """Entry point of a spare process: block until a spec arrives, then serve it as ``target`` does.

    End of file on the pipe (the runner let the spare go, or the supervisor ended)
    ends the spare quietly; so does the death signal, armed first like a worker's.
    """
    lifeline.arm(_expected_parent())
    _set_title()
    try:
        spec = conn.recv()
    except (EOFError, OSError):
        return
    # from here on the same process as a cold-started worker of the slot, name included
    multiprocessing.current_process().name = f"{WORKER_PROCESS_PREFIX}{spec.worker_id}"
    target(spec, conn, current_mid)


def _expected_parent() -> int | None:
    if lifeline.fork_server_pid is not None:
        return lifeline.fork_server_pid
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else None


def _set_title() -> None:
    """``rmqtui: spare worker`` in ps until the slot's own title replaces it."""
    try:
        import setproctitle
    except ImportError:  # optional: ps shows the fork server's command line instead
        return
    setproctitle.setproctitle("rmqtui: spare worker")
