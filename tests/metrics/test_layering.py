"""The new engine modules keep the layering rules: no Textual, and a pure autoscale core."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "rmqtui" / "engine"


def test_new_modules_load_no_textual():
    code = ("import sys, rmqtui.engine.metrics, rmqtui.engine.autoscale, rmqtui.engine.broker_sys, "
            "rmqtui.engine.ops, rmqtui.engine.skew, rmqtui.doctor, rmqtui.probe\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rmqtui') and "
            "(m.startswith('textual') or m.startswith('rmqtui.ui') or m in ('rmqtui.headless', 'rmqtui.cli'))))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", f"loaded: {r.stdout} {r.stderr}"


def test_autoscale_core_imports_only_the_standard_library_and_engine_data():
    tree = ast.parse((ENGINE / "autoscale.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {(n.module if isinstance(n, ast.ImportFrom) else n.names[0].name) for n in top}
    allowed = {"__future__", "collections", "logging", "math", "os", "threading", "dataclasses", "typing", "snapshot"}
    assert names <= allowed, f"module-level imports beyond the standard library and snapshot: {names - allowed}"
    assert "time" not in names, "the core reads no clock"
