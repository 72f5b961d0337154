"""Worker processes: :func:`run` is the entry point the supervisor starts for each slot.

This package is the fork server's preload, so it imports what a worker needs
(paho, the dispatch path) and nothing else.  Imported in the fork server
itself, it arms that process's death signal (see :mod:`.lifeline`).
"""

from . import lifeline
from .main import run

lifeline.arm_fork_server()

__all__ = ["run"]
