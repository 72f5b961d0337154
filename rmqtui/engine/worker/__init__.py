"""Worker processes: :func:`run` is the entry point the supervisor starts for each slot.

This package is the fork server's preload, so it imports what a worker needs
(paho, the dispatch path) and nothing else.  Imported in the fork server
itself, it arms that process's death signal (see :mod:`.lifeline`) and sets
the fork server up to fork small, quick workers (see :mod:`.forkserve`);
:func:`wait_for_slot` runs in the spare process the supervisor keeps ready.
"""

from . import forkserve, lifeline

_IN_FORK_SERVER = lifeline.arm_fork_server()
if _IN_FORK_SERVER:
    forkserve.begin()

from .main import run  # noqa: E402 - after begin(): the fork server imports it with its collector off
from .spare import wait_for_slot  # noqa: E402

if _IN_FORK_SERVER:
    forkserve.finish()

__all__ = ["run", "wait_for_slot"]
