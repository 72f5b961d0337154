"""The log pane: fleet events and worker log records, newest last, optionally one worker only."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from rmqtui.engine.snapshot import LogRecord

from .keyed_table import part_style

MAX_LINES = 2000
_LEVEL_LABEL = {"WARNING": "WARN", "CRITICAL": "CRIT"}


class LogPane(RichLog):
    """A bounded log that keeps its own records so it can re-filter them."""

    COMPONENT_CLASSES = {"log--time", "log--debug", "log--info", "log--warning", "log--error", "log--source"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LINES, min_width=20, wrap=True, markup=False, highlight=False,
                         auto_scroll=True)
        self._records: deque[LogRecord] = deque(maxlen=MAX_LINES)
        self._only: str | None = None
        self._drawn_width = 0

    @property
    def only(self) -> str | None:
        """The worker id the pane is limited to, or None for every source."""
        return self._only

    def show_only(self, source: str | None) -> None:
        """Limit the pane to ``source`` (None: everything) and redraw it."""
        if source == self._only:
            return
        self._only = source
        self._redraw()

    def on_resize(self) -> None:
        # Lines are wrapped when written; re-wrap them for the new width.
        if self.scrollable_content_region.width != self._drawn_width:
            self._redraw()

    def _redraw(self) -> None:
        self._drawn_width = self.scrollable_content_region.width
        self.clear()
        for record in self._records:
            self._write(record)

    def _write(self, record: LogRecord) -> None:
        # An explicit width: left to measure itself, RichLog wraps at the console width, not the pane's.
        width = self.scrollable_content_region.width
        if width and self._wanted(record):
            self.write(self._line(record), width=width)

    def add(self, records: Iterable[LogRecord]) -> None:
        """Append records, oldest first."""
        for record in records:
            self._records.append(record)
            self._write(record)

    def _wanted(self, record: LogRecord) -> bool:
        return self._only is None or record.source == self._only

    def _line(self, record: LogRecord) -> Text:
        style = lambda name: part_style(self, name)  # noqa: E731
        level = record.level.upper()
        level_class = f"log--{level.lower()}"
        return Text.assemble(
            (time.strftime("%H:%M:%S", time.localtime(record.time)), style("log--time")),
            " ",
            (f"{_LEVEL_LABEL.get(level, level[:5]):<5}", style(level_class) if level_class in self.COMPONENT_CLASSES else ""),
            " ",
            (record.source, style("log--source")),
            " ",
            record.message,
        )
