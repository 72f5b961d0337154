"""``rmqtui init`` writes a loadable project and never overwrites."""

from __future__ import annotations

from pathlib import Path

from rmqtui.engine.config import load
from rmqtui.engine.starter import STARTER_FILES, init_project


def test_init_writes_a_project_that_loads(tmp_path: Path) -> None:
    written = init_project(tmp_path)
    assert sorted(written) == sorted(tmp_path / name for name in STARTER_FILES)
    config = load(tmp_path / "routemq.toml", env={})
    assert [r.name for r in config.routes] == ["sensor-data", "telemetry", "alerts"]
    assert config.broker.embedded


def test_second_init_overwrites_nothing(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "routemq.toml").write_text("# mine\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    skipped: list[Path] = []
    assert init_project(tmp_path, on_skip=skipped.append) == []
    assert sorted(skipped) == sorted(tmp_path / name for name in STARTER_FILES)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_init_fills_in_only_missing_files(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "app_routes" / "alerts.py").unlink()
    assert init_project(tmp_path) == [tmp_path / "app_routes" / "alerts.py"]


def test_repo_example_matches_the_template() -> None:
    repo = Path(__file__).resolve().parents[2]
    for name in STARTER_FILES:
        assert (repo / name).read_text() == (repo / "rmqtui" / "templates" / name).read_text(), name
