"""Every test gets its own private runtime and state directories (rmqtui keeps broker sessions
and logs in the state directory, which must not leak between tests or into the user's home)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    base = tmp_path_factory.mktemp("rmqtui-dirs")
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(base / "run"))
    monkeypatch.setenv("STATE_DIRECTORY", str(base / "state"))
    (base / "run").mkdir(mode=0o700)
    (base / "state").mkdir(mode=0o700)
    yield base
