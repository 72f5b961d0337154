"""Test support: each process appends what its handlers saw to out/<pid>.jsonl."""
import json
import os
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "out"
_files = {}


def _bytes(value):
    if isinstance(value, bytes):  # RouteMQ passes a payload that is not JSON as raw bytes
        return {"bytes": value.decode("utf-8", "replace")}
    raise TypeError(type(value).__name__)


def record(**fields):
    pid = os.getpid()
    if pid not in _files:
        OUT.mkdir(exist_ok=True)
        _files[pid] = open(OUT / f"{pid}.jsonl", "a", buffering=1)
    _files[pid].write(json.dumps({"pid": pid, **fields}, default=_bytes) + "\n")
