"""The engine's layering rules (DESIGN.md, "Engine layout"), checked on the source: each would fail on a
violating import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "rmqtui" / "engine"
PURE = ("slot", "pool", "policy", "commands", "reload", "events", "rates", "core", "view", "specs", "effects")
# what the pure core may import from the engine: its data modules and itself
ENGINE_DATA = {"config", "protocol", "snapshot", "topics", "api", "supervisor", "textsafe", "skew"}
WORLD = {"os", "time", "subprocess", "socket", "selectors", "multiprocessing", "psutil", "signal_mod", "threading",
         "ctypes", "shutil", "random"}


def imports(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import in ``path``; relative imports keep their level."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, node.level))
        elif isinstance(node, ast.ImportFrom):  # from .. import config
            out += [(a.name, node.level) for a in node.names]
    return out


def absolute(path: Path, module: str, level: int) -> str:
    if level == 0:
        return module
    package = list(path.relative_to(ENGINE.parent.parent).with_suffix("").parts[:-1])
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def engine_files():
    return sorted(ENGINE.rglob("*.py"))


def test_rule1_the_engine_imports_no_front_end_and_no_test_helper():
    banned = ("textual", "rmqtui.ui", "rmqtui.headless", "rmqtui.cli", "rmqtui.testing", "rmqtui.demo")
    bad = [(p.name, m) for p in engine_files() for m, lv in imports(p)
           if absolute(p, m, lv).startswith(banned)]
    assert not bad, f"engine modules import front ends or test helpers: {bad}"


def test_rule2_the_pure_core_imports_only_the_standard_library_and_engine_data():
    stdlib = set(sys.stdlib_module_names)
    for name in PURE:
        path = ENGINE / "supervisor" / f"{name}.py"
        for module, level in imports(path):
            full = absolute(path, module, level)
            top = full.split(".")[0]
            if full.startswith("rmqtui.engine."):
                part = full.split(".")[2]
                assert part in ENGINE_DATA, f"{name}.py imports {full}: the core may use engine data modules only"
                if part == "supervisor":
                    sub = full.split(".")[3] if full.count(".") >= 3 else ""
                    assert sub in PURE or sub == "", f"{name}.py imports {full}, which touches the world"
            else:
                assert top in stdlib and top != "rmqtui", f"{name}.py imports {full}: not the standard library"
                assert top not in WORLD, f"{name}.py imports {full}: the core reads no clock and touches no process"


def test_rule3_only_procs_touches_workers_only_broker_modules_mosquitto_only_stats_psutil():
    for path in engine_files():
        found = {absolute(path, m, lv) for m, lv in imports(path)}
        rel = path.relative_to(ENGINE).as_posix()
        if "psutil" in found:
            assert rel == "stats.py", f"{rel} imports psutil; only stats.py may"
        if "multiprocessing" in found and rel.startswith("supervisor/"):
            assert rel == "supervisor/procs.py", f"{rel} imports multiprocessing; only procs.py starts workers"
        if "subprocess" in found:
            assert rel == "broker.py", f"{rel} runs subprocesses; only the broker module starts Mosquitto"
        if "rmqtui.engine.broker" in found and rel.startswith("supervisor/"):
            assert rel in ("supervisor/broker_keeper.py", "supervisor/fleet.py"), f"{rel} reaches for Mosquitto"
    keeper_users = [p.name for p in (ENGINE / "supervisor").glob("*.py")
                    if "EmbeddedBroker(" in p.read_text() and p.name != "fleet.py"]
    assert not keeper_users, f"only the fleet creates the broker (for its keeper): {keeper_users}"
    restarters = [p.name for p in (ENGINE / "supervisor").glob("*.py") if "b.restart(" in p.read_text()
                  or "broker.restart(" in p.read_text()]
    assert restarters == ["broker_keeper.py"], f"only the keeper restarts the broker: {restarters}"


def test_rule4_fleet_runs_no_effect_under_its_lock():
    tree = ast.parse((ENGINE / "supervisor" / "fleet.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any("_lock" in ast.unparse(i.context_expr) for i in node.items):
            body = ast.unparse(node)
            for call in ("_runner.spawn", "_runner.signal", "_runner.send", "_run_effects", "_keeper.", ".join(",
                         "os.kill", "open("):
                assert call not in body, f"fleet.py calls {call} while holding its lock:\n{body}"


def test_no_module_of_the_supervisor_is_over_about_400_lines():
    for path in (ENGINE / "supervisor").glob("*.py"):
        n = len(path.read_text().splitlines())
        assert n <= 420, f"{path.name} has {n} lines"
