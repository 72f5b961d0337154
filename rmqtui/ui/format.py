"""Pure text formatting for numbers shown in the TUI (no Textual imports)."""

from __future__ import annotations

from collections.abc import Sequence

_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values as block characters, scaled to their maximum."""
    if width <= 0:
        return ""
    tail = list(values)[-width:]
    if not tail:
        return ""
    top = max(tail)
    if top <= 0:
        return _BLOCKS[0] * len(tail)
    last = len(_BLOCKS) - 1
    return "".join(_BLOCKS[min(last, int(v / top * last + 0.5))] for v in tail)


def count(n: int | None) -> str:
    """A counter that stays within six characters: 999999, 1.48M, 12.3G."""
    if n is None:
        return "–"
    if n < 1_000_000:
        return str(n)
    for unit, div in (("M", 1e6), ("G", 1e9)):
        value = n / div
        if value < 999.5 or unit == "G":
            return f"{value:.2f}{unit}" if value < 10 else f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    raise AssertionError("unreachable")


def rate(r: float) -> str:
    """Messages per second, one decimal below 1000."""
    return f"{r:.1f}" if r < 1000 else f"{r:.0f}"


def percent(p: float | None) -> str:
    """CPU percent, or a dash while unknown."""
    return "–" if p is None else f"{p:.1f}" if p < 100 else f"{p:.0f}"


def megabytes(b: int | None) -> str:
    """Bytes as whole mebibytes, or a dash while unknown."""
    return "–" if b is None else f"{b / (1024 * 1024):.0f}"


def plain(n: int | None) -> str:
    """A small integer, or a dash while unknown."""
    return "–" if n is None else str(n)


def duration(seconds: float | None) -> str:
    """Compact elapsed time: 45s, 12m, 3h02m, 4d07h.

    Past the first minute the text changes once a minute, not every second: with a hundred
    workers, a per-second uptime column made most of the table redraw on every refresh.
    """
    if seconds is None:
        return "–"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    m = s // 60
    if m < 60:
        return f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"
