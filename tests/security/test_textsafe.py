"""Log text cannot drive the operator's terminal, and cannot grow without bound."""

from __future__ import annotations

import pytest

from rmqtui.engine.textsafe import MAX_TEXT, clean

HOSTILE = [
    ("\x1b]0;pwned\x07title", "title"),
    ("before\x1b[2Jafter", "beforeafter"),
    ("fake\x1b[1;1Hstatus", "fakestatus"),
    ("bell\x07 and nul\x00", "bell\ufffd and nul\ufffd"),
    ("c1\x9b31mred", "c1\ufffd31mred"),
    ("osc with st \x1b]8;;http://x\x1b\\link", "osc with st link"),
    ("tab\tand\nnewline stay", "tab\tand\nnewline stay"),
]


@pytest.mark.parametrize("raw,want", HOSTILE)
def test_escape_sequences_and_controls_are_removed(raw, want):
    assert clean(raw) == want


def test_long_text_is_cut_and_says_so():
    out = clean("x" * 10_000_000)
    assert len(out) <= MAX_TEXT + 10 and out.endswith("[cut]"), f"{len(out)} characters kept"
    assert clean("short") == "short"
