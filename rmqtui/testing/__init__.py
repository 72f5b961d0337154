"""Helpers shared by the tests, the benchmarks and the demo: a project writer, a wait helper,
a numbered QoS 1 publisher and fake process runner scenarios.  The engine never imports this."""

from .project import Project, write_config
from .publish import publish
from .wait import WaitTimeout, wait_for

__all__ = ["Project", "write_config", "publish", "wait_for", "WaitTimeout"]
