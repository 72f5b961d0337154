"""Where a key is in the file: the line of ``routes[2].qos``, found by scanning the raw text."""

from __future__ import annotations

import re


class Locator:
    """Finds the line of a dotted key such as ``routes[2].qos`` by scanning the raw text.

    Good enough, not a TOML parser: it follows ``[table]`` and ``[[array]]`` headers
    (counting array entries) and ``key =`` lines, and skips multi-line strings.
    A key it cannot find falls back to its nearest enclosing table.
    """

    _HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
    _KEY = re.compile(r"""\s*([A-Za-z0-9_\-."' ]+?)\s*=""")

    def __init__(self, text: str) -> None:
        self._lines: dict[str, int] = {}
        counts: dict[str, int] = {}
        prefix = ""
        open_quote: str | None = None
        for number, raw in enumerate(text.splitlines(), 1):
            if open_quote is not None:
                if raw.count(open_quote) % 2 == 1:
                    open_quote = None
                continue
            header = self._HEADER.match(raw)
            if header:
                name = self._norm(header.group(2))
                if header.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    prefix = f"{name}[{index}]"
                else:
                    prefix = name
                self._lines.setdefault(prefix, number)
                continue
            key = self._KEY.match(raw)
            if key:
                dotted = self._norm(key.group(1))
                self._lines.setdefault(f"{prefix}.{dotted}" if prefix else dotted, number)
                rest = raw[key.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        open_quote = quote

    @staticmethod
    def _norm(dotted: str) -> str:
        return ".".join(part.strip().strip("\"'") for part in dotted.split("."))

    def line_of(self, key: str) -> int | None:
        """The line of ``key``, else of its nearest enclosing table, else ``None``."""
        while key:
            if key in self._lines:
                return self._lines[key]
            if key.endswith("]"):
                key = key[: key.rfind("[")]
            else:
                key = key.rpartition(".")[0]
        return None
