"""The log pane: fleet events and worker log records, newest last, wrapped to the pane's width.

Its cost does not grow with the log rate: :meth:`LogPane.add` only appends records to
bounded lists (one call per refresh, however many records arrived) and counts the rows
each will take; a record is turned into styled text only when it scrolls into view
(``render_line``), then cached.  The pane can follow the tail, be scrolled back, paused,
searched and filtered by level or by worker.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input

from rmqtui.engine.snapshot import LogRecord

from .keyed_table import part_style

MAX_RECORDS = 50_000
"""Records kept for scroll-back and re-filtering (about 3 minutes of fleet-wide debug at 300 msg/s)."""

from ..engine.api import LOG_LEVELS as LEVELS  # noqa: E402 - the one copy
_RANK = {level: i for i, level in enumerate(LEVELS)} | {"CRITICAL": 3}
_LEVEL_LABEL = {"WARNING": "WARN", "CRITICAL": "CRIT"}
_SLACK = MAX_RECORDS // 4  # trim in batches: one list copy per 12,500 records, not one per record


@dataclass(frozen=True, slots=True)
class _Line:
    n: int  # position in arrival order: the render cache key, stable while lines scroll away
    record: LogRecord


class LogPane(ScrollView, can_focus=True):
    """A bounded, virtual log: only the lines on screen are ever rendered."""

    BINDINGS = [
        Binding("p", "toggle_pause", "Pause log", id="log_pause", tooltip="Log pane: pause / follow again"),
        Binding("v", "cycle_level", "Level", id="log_level",
                tooltip="Log pane: show DEBUG+, INFO+, WARNING+ or ERROR only"),
        Binding("escape", "clear_search", "Clear search", show=False, id="log_clear_search"),
        Binding("home", "scroll_home", "First line", show=False),
        Binding("end", "follow", "Follow", show=False),
    ]
    COMPONENT_CLASSES = {"log--time", "log--debug", "log--info", "log--warning", "log--error", "log--source",
                         "log--match"}

    class ViewChanged(Message):
        """Pause, level, search, worker filter or following changed: the app updates the pane's title."""

        def __init__(self, pane: LogPane) -> None:
            super().__init__()
            self.pane = pane

        @property
        def control(self) -> LogPane:
            return self.pane

    def __init__(self, *, id: str | None = None, max_records: int = MAX_RECORDS) -> None:
        super().__init__(id=id)
        self.max_records = max_records
        self._records: list[_Line] = []
        self._view: list[_Line] = []
        self._arrived = 0
        self._ends: list[int] = []  # per view line: the row after its last, counted from the first row ever
        self._base = 0  # rows of lines trimmed from the front of the view
        self._wrap = 0  # the width rows were counted for
        self._only: str | None = None
        self._min_level = "DEBUG"
        self._search = ""
        self._paused = False
        self._pending = 0
        self._cache: LRUCache[int, list[Strip]] = LRUCache(512)
        # Kept from scroll changes, not computed from sizes: a resize moves the end but must
        # not stop the pane from following it.
        self._at_end = True
        self.search_box: LogSearchBox | None = None  # set by the box that searches this pane

    # -- state the app shows in the title -------------------------------------------------------

    @property
    def only(self) -> str | None:
        """The worker id the pane is limited to, or None for every source."""
        return self._only

    @property
    def min_level(self) -> str:
        """Lowest level shown."""
        return self._min_level

    @property
    def search(self) -> str:
        """The text every shown line contains ("" = no search)."""
        return self._search

    @property
    def paused(self) -> bool:
        """True while new records are held back from the view."""
        return self._paused

    @property
    def pending(self) -> int:
        """Records that arrived while paused."""
        return self._pending

    @property
    def following(self) -> bool:
        """True when the last line is on screen, so new lines scroll into view."""
        return not self._paused and self._at_end

    def describe(self) -> str:
        """A short description of the view for the pane's title."""
        parts = ["log"]
        if self._only:
            parts.append(f"{self._only} only")
        if self._min_level != "DEBUG":
            parts.append(f"{self._min_level}+")
        if self._search:
            parts.append(f"search “{self._search}” ({len(self._view)})")
        if self._paused:
            parts.append(f"PAUSED, {self._pending} new (p resumes)")
        elif not self.following and self._view:
            parts.append("scrolled back (end follows)")
        return " · ".join(parts)

    @property
    def lines(self) -> list[Strip]:
        """Every record of the current view as one unwrapped line (for tests; the screen renders
        only the rows it shows)."""
        return [self._unwrapped(line.record) for line in self._view]

    @property
    def rows(self) -> int:
        """Rows the view takes at the current width."""
        return self._ends[-1] - self._base if self._ends else 0

    # -- feeding --------------------------------------------------------------------------------

    def add(self, records: Iterable[LogRecord]) -> None:
        """Append records, oldest first: list appends only, and one refresh for the whole batch."""
        following = self.following
        batch = records if isinstance(records, list) else list(records)
        if len(batch) > self.max_records:
            # More than the pane keeps arrived in one refresh: the older ones would be trimmed
            # right away, so they are not even looked at.
            self._arrived += len(batch) - self.max_records
            batch = batch[-self.max_records:]
        added = 0
        for record in batch:
            line = _Line(self._arrived, record)
            self._arrived += 1
            self._records.append(line)
            if self._paused:
                self._pending += 1
            elif self._wanted(record):
                self._view.append(line)
                self._ends.append((self._ends[-1] if self._ends else self._base) + self._rows_of(record))
                added += 1
        if len(self._records) > self.max_records + _SLACK:
            del self._records[: len(self._records) - self.max_records]
        if not added:
            if self._paused:
                self.post_message(self.ViewChanged(self))
            return
        dropped = len(self._view) - self.max_records
        gone = 0
        if dropped > 0:
            gone = self._ends[dropped - 1] - self._base
            self._base = self._ends[dropped - 1]
            del self._view[:dropped]
            del self._ends[:dropped]
        self.virtual_size = Size(self._wrap, self.rows)
        if following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        elif gone:
            # Scrolled back: keep the same lines on screen while old ones leave the top.
            self.scroll_to(y=max(0, self.scroll_y - gone), animate=False, immediate=True)
        self.refresh()

    def records_of(self, source: str) -> list[LogRecord]:
        """The kept records of ``source``, oldest first (to seed a worker's own log view)."""
        return [line.record for line in self._records if line.record.source == source]

    # -- view settings --------------------------------------------------------------------------

    def show_only(self, source: str | None) -> None:
        """Limit the pane to ``source`` (None: everything) and rebuild the view."""
        if source != self._only:
            self._only = source
            self._rebuild()

    def set_level(self, level: str) -> None:
        """Show records at ``level`` and above."""
        if level not in _RANK:
            raise ValueError(f"unknown log level {level!r}")
        if level != self._min_level:
            self._min_level = level
            self._rebuild()

    def set_search(self, text: str) -> None:
        """Show only lines whose source or message contains ``text`` (case-insensitive); "" clears."""
        if text != self._search:
            self._search = text
            self._rebuild()

    def set_paused(self, paused: bool) -> None:
        """Hold new records back (the view stays still) or show them and follow the tail again."""
        if paused == self._paused:
            return
        self._paused = paused
        if not paused:
            self._rebuild()
        else:
            self.post_message(self.ViewChanged(self))

    def action_toggle_pause(self) -> None:
        self.set_paused(not self._paused)

    def action_cycle_level(self) -> None:
        self.set_level(LEVELS[(LEVELS.index(self._min_level) + 1) % len(LEVELS)])

    def action_search(self) -> None:
        if self.search_box is not None:
            self.search_box.open()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Without a search, escape is not ours: it closes the detail screen.
        if action == "clear_search":
            return bool(self._search)
        return True

    def action_clear_search(self) -> None:
        self.set_search("")

    def action_follow(self) -> None:
        self.set_paused(False)
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.post_message(self.ViewChanged(self))

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        at_end = new >= self.max_scroll_y
        if at_end != self._at_end:
            self._at_end = at_end
            self.post_message(self.ViewChanged(self))

    def _rebuild(self) -> None:
        self._pending = 0
        self._view = [line for line in self._records if self._wanted(line.record)][-self.max_records:]
        self._count_rows()
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()
        self.post_message(self.ViewChanged(self))

    def _count_rows(self) -> None:
        self._wrap = self.scrollable_content_region.width
        self._cache.clear()
        self._base = 0
        self._ends = []
        end = 0
        for line in self._view:
            end += self._rows_of(line.record)
            self._ends.append(end)
        self.virtual_size = Size(self._wrap, self.rows)

    def _rows_of(self, record: LogRecord) -> int:
        # Records wrap at a fixed width, character by character, so their rows are known
        # from their length alone, without rendering them.
        return max(1, -(-_width_of(record) // self._wrap)) if self._wrap > 0 else 1

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._wrap:
            following = self.following
            self._count_rows()
            if following:
                self.scroll_end(animate=False, immediate=True, x_axis=False)
            self.refresh()

    def _wanted(self, record: LogRecord) -> bool:
        if self._only is not None and record.source != self._only:
            return False
        if _RANK.get(record.level.upper(), 1) < _RANK[self._min_level]:
            return False
        if self._search:
            needle = self._search.lower()
            return needle in record.message.lower() or needle in record.source.lower()
        return True

    # -- rendering ------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def render_line(self, y: int) -> Strip:
        row = self.scroll_offset.y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        absolute = row + self._base
        index = bisect_right(self._ends, absolute)
        if index >= len(self._view):
            return Strip.blank(width, style)
        first = self._ends[index - 1] if index else self._base
        strips = self._wrapped(self._view[index])
        part = absolute - first
        if part >= len(strips):
            return Strip.blank(width, style)
        return strips[part].crop_extend(0, width, style).apply_offsets(0, row)

    def _wrapped(self, line: _Line) -> list[Strip]:
        strips = self._cache.get(line.n)
        if strips is None:
            text = self._text(line.record)
            width = max(1, self._wrap)
            pieces = text.divide(range(width, len(text.plain), width)) if len(text.plain) > width else [text]
            for piece in pieces:
                piece.end = ""
            strips = [self._strip_of(piece) for piece in pieces]
            self._cache[line.n] = strips
        return strips

    def _unwrapped(self, record: LogRecord) -> Strip:
        return self._strip_of(self._text(record))

    def _strip_of(self, text: Text) -> Strip:
        base = self.rich_style
        segments = [Segment(s.text, base + s.style if s.style else base) for s in text.render(self.app.console)]
        return Strip(segments, text.cell_len)

    def _text(self, record: LogRecord) -> Text:
        style = lambda name: part_style(self, name)  # noqa: E731
        level = record.level.upper()
        level_class = f"log--{level.lower()}"
        text = Text.assemble(
            (time.strftime("%H:%M:%S", time.localtime(record.time)), style("log--time")),
            " ",
            (f"{_LEVEL_LABEL.get(level, level[:5]):<5}",
             style(level_class) if level_class in self.COMPONENT_CLASSES else Style.null()),
            " ",
            (record.source, style("log--source")),
            " ",
            record.message,
            no_wrap=True,
            end="",
        )
        if self._search:
            text.highlight_words([self._search], style("log--match"), case_sensitive=False)
        return text


def _width_of(record: LogRecord) -> int:
    # time, level and three spaces: 8 + 1 + 5 + 1 + 1 cells; a message is one line (control
    # characters are stripped by the engine), so its length is its width for all but wide glyphs.
    return 16 + len(record.source) + len(record.message)


class LogSearchBox(Input):
    """The search line of a :class:`LogPane`: ``/`` in the pane opens it, the pane filters as
    you type, enter keeps the search, esc clears it."""

    BINDINGS = [Binding("escape", "cancel", "Clear search", show=False)]

    def __init__(self, pane: LogPane, *, id: str | None = None) -> None:
        super().__init__(placeholder="search the log (enter keeps, esc clears)", id=id, classes="log-search")
        self.pane = pane
        pane.search_box = self

    def open(self) -> None:
        """Show the box with the pane's current search and focus it."""
        self.value = self.pane.search
        self.display = True
        self.app.set_focus(self)  # at once: keys typed right after "/" are search text, not commands

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.pane.set_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._close()

    def action_cancel(self) -> None:
        self.value = ""
        self._close()

    def _close(self) -> None:
        self.display = False
        self.pane.focus()
