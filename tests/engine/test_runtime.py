"""Runtime and state directories: private, ours, never followed through a symlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rmqtui.engine import runtime


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    for name in ("RUNTIME_DIRECTORY", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "run").mkdir(mode=0o700)
    return tmp_path


def test_fleet_dirs_are_private_and_per_config(dirs):
    a = runtime.fleet_runtime_dir(dirs / "p1" / "routemq.toml")
    b = runtime.fleet_runtime_dir(dirs / "p2" / "routemq.toml")
    s = runtime.fleet_state_dir(dirs / "p1" / "routemq.toml")
    assert a != b, "two configs must not share a runtime directory"
    assert a.parent == dirs / "run" / "rmqtui"
    assert s.parent == dirs / "state" / "rmqtui"
    for d in (a, b, s, a.parent, s.parent):
        assert d.stat().st_mode & 0o777 == 0o700, f"{d} is {oct(d.stat().st_mode)}"
    assert runtime.fleet_runtime_dir(dirs / "p1" / "routemq.toml") == a, "the name must be stable"


def test_symlinked_runtime_dir_is_refused(dirs):
    target = dirs / "elsewhere"
    target.mkdir(mode=0o700)
    (dirs / "run" / "rmqtui").symlink_to(target)
    with pytest.raises(runtime.RuntimePathError, match="symlink"):
        runtime.runtime_root()


def test_writable_by_others_runtime_dir_is_refused_with_the_fix(dirs):
    (dirs / "run" / "rmqtui").mkdir(mode=0o700)
    os.chmod(dirs / "run" / "rmqtui", 0o777)
    with pytest.raises(runtime.RuntimePathError, match="chmod 700"):
        runtime.runtime_root()


def test_readable_own_dir_of_an_older_version_is_closed(dirs):
    (dirs / "run" / "rmqtui").mkdir(mode=0o700)
    os.chmod(dirs / "run" / "rmqtui", 0o755)
    assert runtime.runtime_root() == dirs / "run" / "rmqtui"
    assert (dirs / "run" / "rmqtui").stat().st_mode & 0o777 == 0o700


def test_foreign_owner_is_refused(dirs):
    if os.geteuid() != 0:
        pytest.skip("needs root to make a directory owned by another uid")
    d = dirs / "run" / "rmqtui"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    with pytest.raises(runtime.RuntimePathError, match="belongs to uid 65534"):
        runtime.runtime_root()


def test_write_private_replaces_a_planted_symlink_not_its_target(dirs):
    victim = dirs / "victim.txt"
    victim.write_text("precious")
    d = runtime.fleet_runtime_dir(dirs / "p" / "routemq.toml")
    (d / "state.json").symlink_to(victim)
    runtime.write_private(d / "state.json", '{"port": 1}')
    assert victim.read_text() == "precious"
    assert not (d / "state.json").is_symlink()
    assert (d / "state.json").stat().st_mode & 0o777 == 0o600
    assert runtime.read_private(d / "state.json") == b'{"port": 1}'


def test_read_private_refuses_a_symlink(dirs):
    d = runtime.fleet_runtime_dir(dirs / "p" / "routemq.toml")
    (dirs / "x").write_text("{}")
    (d / "link.json").symlink_to(dirs / "x")
    with pytest.raises(OSError):
        runtime.read_private(d / "link.json")
