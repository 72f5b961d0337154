"""Discovery in a subprocess, the checks, `init --from-routemq` and `check --routemq-app`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rmqtui.cli import main
from rmqtui.engine.config import load
from rmqtui.routemq.checks import ERROR, WARNING, check_route, check_routes
from rmqtui.routemq.discover import RouteInfo, discover
from rmqtui.routemq.project import ProjectError

from .conftest import PROJECT, copy_project, write_files


@pytest.fixture(scope="module")
def discovery():
    return discover(PROJECT)


def test_discovers_every_route_in_routemq_order(discovery):
    got = [(r.topic, r.qos, r.shared, r.worker_count, r.handler, r.middleware) for r in discovery.routes]
    assert got == [
        ("commands/{device_id}/{command}", 1, True, 1, "app.controllers.commands:run_command", ()),
        ("devices/{device_id}/telemetry", 1, True, 3, "app.controllers.devices:DeviceController.telemetry",
         ("StampMiddleware",)),
        ("devices/{device_id}/status", 1, False, 1, "app.controllers.devices:DeviceController.status",
         ("StampMiddleware",)),
    ], f"routes {got}"
    telemetry = discovery.routes[1]
    assert telemetry.where == f"{PROJECT / 'app/routers/devices.py'}:9", f"registered at {telemetry.where}"
    assert "GREETING" in discovery.env_added, ".env must be loaded before the routers are imported"
    assert check_routes(discovery) == [], "the test project has no traps"


def test_discovery_never_imports_the_project_here():
    before = set(sys.modules)
    discover(PROJECT)
    assert not {m for m in set(sys.modules) - before if m == "app" or m.startswith("app.")}, \
        "discovery must import the project in a subprocess only"


def test_import_error_names_file_line_and_fix(tmp_path):
    root = write_files(tmp_path, {"app/routers/broken.py": """\
        from routemq.router import Router
        router = Router()
        import not_a_module_anywhere
        """})
    with pytest.raises(ProjectError) as info:
        discover(root)
    e = info.value
    assert e.where == f"{root / 'app/routers/broken.py'}:3", f"where: {e.where}"
    assert "not_a_module_anywhere" in e.problem and "install" in e.fix, str(e)


def test_no_routers_package_and_zero_routes(tmp_path):
    with pytest.raises(ProjectError) as info:
        discover(tmp_path)
    assert "no package 'app.routers'" in info.value.problem, str(info.value)
    root = write_files(tmp_path / "p", {"app/routers/empty.py": "x = 1\n",
                                        "app/routers/_private.py": "raise SystemExit('never imported')\n"})
    d = discover(root)
    findings = check_routes(d)
    assert [f.level for f in findings] == [ERROR, WARNING], f"findings {findings}"
    assert "no routes found" in findings[0].problem and "empty.py" in findings[1].where, str(findings)


def test_project_prints_do_not_break_discovery(tmp_path):
    root = write_files(tmp_path, {"app/routers/noisy.py": """\
        from routemq.router import Router
        print("{not json")
        router = Router()
        async def h(payload, client): pass
        router.on("a/b", h)
        """})
    assert [r.topic for r in discover(root).routes] == ["a/b"], "stdout of the project must not corrupt the answer"


def route(topic: str, **kw) -> RouteInfo:
    fields = dict(qos=1, shared=True, worker_count=1, handler="m:h", is_async=True, file="r.py", line=3)
    fields.update(kw)
    return RouteInfo(topic=topic, **fields)


@pytest.mark.parametrize("topic, level, words", [
    ("dev-{id}/x", ERROR, "invalid filter 'dev-+/x'"),
    ("a/+/b", ERROR, "never matches"),
    ("a/#", ERROR, "never matches"),
    ("$SYS/x", ERROR, "starts with '$'"),
    ("a(b)/{x}", ERROR, "never matches"),
    ("site.a/{x}", WARNING, "also matches 'siteXa/x'"),
])
def test_topic_traps(topic, level, words):
    findings = check_route(route(topic))
    assert findings and findings[0].level == level and words in findings[0].problem, \
        f"{topic}: {[f.render() for f in findings]}"
    assert findings[0].where == "r.py:3" and findings[0].fix, "a finding says where and how to fix"


def test_sync_handler_and_middleware():
    findings = check_route(route("a/{x}", is_async=False, sync_middleware=("Auth",)))
    problems = " | ".join(f.problem for f in findings)
    assert "not `async def`" in problems and "Auth.handle" in problems, problems


def test_overlaps_and_duplicates(tmp_path):
    root = write_files(tmp_path, {"app/routers/r.py": """\
        from routemq.router import Router
        router = Router()
        async def h(payload, client, **params): pass
        router.on("a/{x}/c", h)
        router.on("a/b/{y}", h)
        router.on("a/{x}/c", h)
        router.on("z/{x}", h)
        """})
    findings = check_routes(discover(root))
    got = sorted((f.level, f.topic, f.where.rsplit(":", 1)[1]) for f in findings)
    assert got == [(ERROR, "a/{x}/c", "6"), (WARNING, "a/b/{y}", "5"), (WARNING, "a/{x}/c", "6")], \
        "\n".join(f.render() for f in findings)


def test_init_writes_a_config_rmqtui_accepts_and_never_overwrites(tmp_path, capsys):
    root = copy_project(tmp_path / "p")
    assert main(["init", "--from-routemq", str(root)]) == 0, capsys.readouterr().err
    config = load(root / "routemq.toml")
    got = [(r.name, r.topic, r.handler, r.shared, r.workers, r.qos) for r in config.routes]
    assert got == [
        ("commands-device_id-command", "commands/{device_id}/{command}",
         "rmqtui_routemq:commands_device_id_command", True, 1, 1),
        ("devices-device_id-telemetry", "devices/{device_id}/telemetry",
         "rmqtui_routemq:devices_device_id_telemetry", True, 3, 1),
        ("devices-device_id-status", "devices/{device_id}/status",
         "rmqtui_routemq:devices_device_id_status", False, 1, 1),
    ], f"routes {got}"
    (root / "routemq.toml").write_text("# mine\n")
    assert main(["init", "--from-routemq", str(root)]) == 0
    assert (root / "routemq.toml").read_text() == "# mine\n", "init must never overwrite a file"
    assert "kept existing" in capsys.readouterr().out


def test_check_reports_traps_and_stale_files_without_traceback(tmp_path, capsys):
    root = copy_project(tmp_path / "p")
    assert main(["init", "--from-routemq", str(root)]) == 0
    (root / "app/routers/extra.py").write_text(
        "from routemq.router import Router\nrouter = Router()\n"
        "def sync(payload, client):\n    pass\nrouter.on('dev-{id}/x', sync)\n")
    capsys.readouterr()
    assert main(["check", "--routemq-app", str(root)]) == 2, "errors make check exit 2"
    err = capsys.readouterr().err
    assert "extra.py:5: error: route 'dev-{id}/x'" in err and "not `async def`" in err, err
    assert "not in the generated files" in err and "Traceback" not in err, err
    assert main(["init", "--from-routemq", str(root)]) == 2, "init refuses a project with errors"
    assert main(["check", "--routemq-app", str(tmp_path / "nowhere")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_fork_server_preload_only_for_routemq_configs(tmp_path):
    from rmqtui.routemq import SAFE_PRELOAD, forkserver_preload

    root = copy_project(tmp_path / "p")
    assert main(["init", "--from-routemq", str(root)]) == 0
    assert forkserver_preload(load(root / "routemq.toml")) == list(SAFE_PRELOAD), "RouteMQ config: preload SQLAlchemy"
    assert "routemq" not in SAFE_PRELOAD, "RouteMQ reads env at import: it must load after .env, in the worker"
    plain = tmp_path / "plain"
    write_files(plain, {"h.py": "def f(msg):\n    pass\n",
                        "routemq.toml": '[[routes]]\nname = "r"\ntopic = "a"\nhandler = "h:f"\n'})
    assert forkserver_preload(load(plain / "routemq.toml")) == [], "plain configs preload nothing extra"


def test_a_router_that_hangs_at_import_is_reported_not_waited_for(tmp_path):
    root = write_files(tmp_path, {"app/routers/slow.py": "import time\ntime.sleep(600)\n"})
    with pytest.raises(ProjectError) as info:
        discover(root, timeout=3)
    assert "longer than 3s" in info.value.problem and "import time" in info.value.fix, str(info.value)
