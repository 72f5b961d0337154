"""Text for numbers, sizes and durations: one copy for the TUI, headless and `rmqtui ctl` (no Textual)."""

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


def chart(values: Sequence[float], width: int, height: int, top: float | None = None) -> list[str]:
    """The last ``width`` values as a bar chart ``height`` rows high (top row first), scaled to ``top``.

    Each row holds eight levels, so a three-row chart tells 24 heights apart.
    """
    if width <= 0 or height <= 0:
        return []
    tail = list(values)[-width:]
    tail = [0.0] * (width - len(tail)) + tail  # right-aligned: the newest value is at the right edge
    peak = top if top is not None else max(tail, default=0.0)
    levels = len(_BLOCKS) * height
    eighths = [0 if peak <= 0 or v <= 0 else max(1, min(levels, round(v / peak * levels))) for v in tail]
    rows = []
    for row in range(height - 1, -1, -1):
        base = row * len(_BLOCKS)
        cells = []
        for e in eighths:
            fill = e - base
            cells.append(" " if fill <= 0 else _BLOCKS[min(fill, len(_BLOCKS)) - 1])
        rows.append("".join(cells))
    return rows


def bytes_mib(b: int | None) -> str:
    """Bytes as mebibytes with one decimal below 100 (6.5 MiB), or a dash while unknown."""
    if b is None:
        return "–"
    mib = b / (1024 * 1024)
    return f"{mib:.1f} MiB" if mib < 100 else f"{mib:.0f} MiB"


def exit_cause(code: int | None) -> str:
    """An exit code as an operator reads it: "code 1", "signal 9", or a dash."""
    if code is None:
        return "–"
    return f"signal {-code}" if code < 0 else f"code {code}"
