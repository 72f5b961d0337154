"""Throw-away rmqtui projects: a ``routemq.toml`` written with tomli-w, plus handler modules."""

from __future__ import annotations

import collections
import textwrap
from pathlib import Path

import tomli_w

from rmqtui.engine.broker import free_port

def recording_handler(delay: float = 0.0) -> str:
    """Source of a handler ``record`` that appends each message's ``seq`` to out/<pid>.txt, taking ``delay`` s."""
    return f'''
import json, os, time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
OUT.mkdir(exist_ok=True)
_file = None

def record(msg):
    global _file
    if {delay!r}:
        time.sleep({delay!r})
    if _file is None:
        _file = open(OUT / f"{{os.getpid()}}.txt", "a", buffering=1)
    seq = json.loads(msg.payload)["seq"]
    _file.write(f"{{seq}} {{int(msg.redelivered)}}\\n")
'''


#: A handler that records every sequence number it completes, one file per process.
RECORDING_HANDLER = recording_handler()


def write_config(path: Path, routes: list[dict], *, fleet: dict | None = None, broker: dict | None = None) -> Path:
    """Write a config with the given routes; ``fleet``/``broker`` override the test defaults."""
    b = {"embedded": True, "host": "127.0.0.1", "port": free_port(), "protocol": "v3.1.1"}
    b.update(broker or {})
    f = {"group": "g", "handlers": "handlers", "heartbeat_interval": 0.2, "drain_timeout": 5.0}
    f.update(fleet or {})
    path.write_text(tomli_w.dumps({"broker": b, "fleet": f, "routes": routes}))
    return path


class Project:
    """A project directory: ``routemq.toml`` plus a ``handlers`` package with the recording handler."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "handlers").mkdir(exist_ok=True)
        (root / "handlers" / "__init__.py").write_text("")
        self.handler("rec", RECORDING_HANDLER)

    def handler(self, module: str, source: str) -> None:
        """Write ``handlers/<module>.py`` (dedented)."""
        (self.root / "handlers" / f"{module}.py").write_text(textwrap.dedent(source))

    def write(self, routes: list[dict], *, fleet: dict | None = None, broker: dict | None = None) -> Path:
        """Write ``routemq.toml`` and return its path."""
        return write_config(self.root / "routemq.toml", routes, fleet=fleet, broker=broker)

    def records(self) -> collections.Counter:
        """How often each sequence number was completed, over all processes."""
        seen: collections.Counter = collections.Counter()
        for f in (self.root / "handlers" / "out").glob("*.txt"):
            for line in f.read_text().splitlines():
                seen[int(line.split()[0])] += 1
        return seen

    def per_process(self) -> dict[int, int]:
        """Messages completed per worker pid."""
        return {int(f.stem): len(f.read_text().splitlines()) for f in (self.root / "handlers" / "out").glob("*.txt")}
