"""The supervisor: a pure core (slots, pools, policy, commands, reload, events, rates) and the few
modules that touch the world (``procs`` for worker processes, ``broker_keeper`` for Mosquitto),
tied together by the :class:`Fleet` facade."""

from .fleet import Fleet
from .state import runtime_state_path
from .procs import start_method

__all__ = ["Fleet", "runtime_state_path", "start_method"]
