"""Text from workers and payloads made safe for a terminal, a log file and a JSON line.

A handler's error message can quote its payload, and a payload can carry escape
sequences (``ESC ]0;title``, ``ESC [2J``) that would retitle or clear the
operator's terminal or fake status lines. Every log record and reason passes
through :func:`clean` once, where it enters the supervisor, so no front end has
to remember it.
"""

from __future__ import annotations

import re

#: Longest log message or reason kept; the rest is cut and counted.
MAX_TEXT = 2000

# ESC-introduced sequences (CSI, OSC ... BEL/ST, two-byte escapes), then any other C0/C1 control
# character except tab and newline, and DEL
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shorten(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its head and tail around a note of what was cut.

    Used where text is made, before it crosses a pipe or goes into a message: an exception that quotes a
    10 MB payload must not become a 10 MB log record.  The tail is kept because a traceback ends with
    the line that matters."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return f"{text[:half]} … [{len(text) - 2 * half} characters cut] … {text[-half:]}"


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` without escape sequences or control characters (tab and newline stay), at most ``limit`` chars."""
    if not isinstance(text, str):
        text = str(text)
    if len(text) > 4 * limit:  # cut first: the regexes need not scan megabytes that will be dropped anyway
        text = text[:4 * limit]
        cut_early = True
    else:
        cut_early = False
    text = _CONTROLS.sub("\N{REPLACEMENT CHARACTER}", _ESCAPES.sub("", text))
    if len(text) > limit or cut_early:
        return text[:limit] + " [cut]"
    return text
