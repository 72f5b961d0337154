"""The live ramp test reuses the engine fixtures: real Mosquitto on a free port, real workers."""

from tests.engine.conftest import project, start_fleet  # noqa: F401  (pytest fixtures)
