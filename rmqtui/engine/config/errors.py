"""The one exception a bad ``routemq.toml`` (or a bad override of it) raises."""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """An invalid configuration: says which file, where, what is wrong and how to fix it."""

    def __init__(self, path: str | Path, problem: str, fix: str = "", *, line: int | None = None,
                 key: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        self.line = line
        self.key = key
        super().__init__(self.render())

    def render(self) -> str:
        """One or two lines for the operator: ``file:line: key: problem`` then ``fix: ...``."""
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
        head = f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"
        return f"{head}\n  fix: {self.fix}" if self.fix else head
