"""The control plane: a running fleet served over unix sockets, and a FleetControl that talks to one.

See :mod:`.server` (the socket), :mod:`.client` (:class:`RemoteFleet`) and
:mod:`.codec` (snapshots as JSON).
"""

from .client import Connection, FleetGone, RemoteError, RemoteFleet, connect
from .paths import EXIT_NO_FLEET, OPERATOR, PROTOCOL_VERSION, READ_ONLY, probe, socket_path
from .server import AlreadyRunning, ControlServer

__all__ = ["AlreadyRunning", "Connection", "ControlServer", "EXIT_NO_FLEET", "FleetGone", "OPERATOR",
           "PROTOCOL_VERSION", "READ_ONLY", "RemoteError", "RemoteFleet", "connect", "probe", "socket_path"]
