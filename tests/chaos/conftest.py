"""Fixtures for the fault-injection suite; the figures tables are printed at the end of the run."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from .harness import ChaosProject, ChaosTimeout, wait_until

FIGURES: list[str] = []


@pytest.fixture
def chaos(tmp_path: Path):
    """A chaos project; every fleet it started is stopped at teardown and no child process may outlive it."""
    project = ChaosProject(tmp_path)
    yield project
    project.stop_all()
    me = psutil.Process()

    def no_children():
        return not [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]

    try:
        wait_until(no_children, 10, "every child process to exit")
    except ChaosTimeout as exc:
        pytest.fail(str(exc))


@pytest.fixture
def figures():
    """``figures(text)`` keeps a table for the end-of-run summary (and prints it for -s runs)."""
    def add(text: str) -> None:
        FIGURES.append(text)
        print(text)
    return add


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("chaos figures")
        for text in FIGURES:
            terminalreporter.write_line(text)
            terminalreporter.write_line("")
