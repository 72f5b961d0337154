"""Loading, validating, overriding and saving ``routemq.toml``."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import pytest

from rmqtui.engine.config import (
    Config,
    ConfigError,
    client_prefix,
    load,
    save_worker_counts,
)

HERE = Path(__file__).resolve().parent
BAD = HERE / "bad_configs"
REPO = HERE.parents[1]

ROUTE = """
[[routes]]
name = "r1"
topic = "a/{x}"
handler = "handlers:ok"
"""


def write_project(tmp_path: Path, toml: str, handler_source: str = "def ok(msg):\n    pass\n") -> Path:
    (tmp_path / "handlers.py").write_text(handler_source)
    path = tmp_path / "routemq.toml"
    path.write_text(toml)
    return path


# (file, where: the key or ":line", words from the fix)
BAD_CASES = [
    ("syntax.toml", ":3", "fix the syntax"),
    ("unknown_route_key.toml", "routes[1].wrokers", "did you mean 'workers'"),
    ("unknown_section.toml", "fleets", "did you mean 'fleet'"),
    ("bool_for_int.toml", "routes[0].workers", "workers = 1"),
    ("quoted_port.toml", "broker.port", "remove the quotes: port = 1883"),
    ("float_keepalive.toml", "broker.keepalive", "keepalive = 2"),
    ("qos.toml", "routes[0].qos", "use qos = 0"),
    ("workers_zero.toml", "routes[0].workers", "workers = 1 or more"),
    ("not_shared_many.toml", "routes[0].workers", "set shared = true"),
    ("duplicate_names.toml", "routes[1].name", "its own name"),
    ("bad_topic.toml", "routes[0].topic", "sensors/{device_id}/data"),
    ("handler_form.toml", "routes[0].handler", "app_routes.sensors:process_data"),
    ("handler_missing_module.toml", "routes[0].handler", "fixture_handlers/missing.py"),
    ("handler_missing_function.toml", "routes[0].handler", "did you mean fixture_handlers.good:ok"),
    ("missing_handler_key.toml", "routes[0].handler", 'add handler = '),
    ("port_range.toml", "broker.port", "between 1 and 65535"),
    ("protocol.toml", "broker.protocol", 'protocol = "v3.1.1"'),
    ("log_level.toml", "fleet.log_level", "DEBUG, INFO, WARNING, ERROR"),
    ("no_routes.toml", "routes", "[[routes]]"),
    ("routes_table.toml", "routes", "double brackets"),
    ("tls_missing.toml", "broker.tls.ca", "fix the path"),
    ("group_slash.toml", "fleet.group", 'group = "workers"'),
    ("route_group_plus.toml", "routes[0].group", 'group = "workers"'),
    ("hang_timeout.toml", "fleet.hang_timeout", "hang_timeout = 30"),
    ("presence_route.toml", "routes[0].topic", "cannot match rmqtui/hosts/"),
]

# The line each error points at, where the file has one.
BAD_LINES = {
    "syntax.toml": 3, "unknown_route_key.toml": 10, "unknown_section.toml": 1, "bool_for_int.toml": 5,
    "quoted_port.toml": 3, "qos.toml": 5, "not_shared_many.toml": 6, "duplicate_names.toml": 7,
    "bad_topic.toml": 3, "handler_missing_function.toml": 4, "tls_missing.toml": 6,
    "route_group_plus.toml": 5, "missing_handler_key.toml": 1, "presence_route.toml": 6,
}


def test_every_bad_config_is_covered() -> None:
    assert sorted(p.name for p in BAD.glob("*.toml")) == sorted(case[0] for case in BAD_CASES)


@pytest.mark.parametrize(("name", "where", "fix"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_config(name: str, where: str, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(BAD / name, env={})
    message = str(info.value)
    assert name in message
    assert where in message
    assert "fix: " in message and fix in message, message
    if name in BAD_LINES:
        assert info.value.line == BAD_LINES[name]
        assert f"{name}:{BAD_LINES[name]}:" in message


def test_handler_modules_are_not_imported() -> None:
    with pytest.raises(ConfigError):
        load(BAD / "handler_missing_function.toml", env={})
    assert "fixture_handlers" not in sys.modules
    assert "fixture_handlers.good" not in sys.modules


def test_handler_with_syntax_error_names_its_file_and_line(tmp_path: Path) -> None:
    path = write_project(tmp_path, ROUTE, "def ok(msg):\n    pass\n\ndef broken(:\n")
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    error = info.value
    assert error.path == str(tmp_path / "handlers.py")
    assert error.line == 4
    assert error.key == "routes[0].handler"
    assert "syntax error" in str(error) and "fix:" in str(error)


@pytest.mark.parametrize(
    "source",
    [
        "async def ok(msg):\n    pass\n",
        "from os import getcwd as ok\n",
        "ok = print\n",
        "try:\n    import json\nexcept ImportError:\n    json = None\nelse:\n    def ok(msg): ...\n",
    ],
)
def test_handler_forms_accepted(tmp_path: Path, source: str) -> None:
    load(write_project(tmp_path, ROUTE, source), env={})


def test_short_handler_name_resolves_inside_fleet_handlers(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("def fn(msg):\n    pass\n")
    path = tmp_path / "routemq.toml"
    path.write_text('[fleet]\nhandlers = "pkg"\n[[routes]]\nname = "r"\ntopic = "t"\nhandler = "mod:fn"\n')
    route = load(path, env={}).route("r")
    assert (route.handler, route.module, route.function) == ("pkg.mod:fn", "pkg.mod", "fn")


def test_installed_module_handlers_are_found(tmp_path: Path) -> None:
    ok = ROUTE.replace("handlers:ok", "json:loads")
    load(write_project(tmp_path, ok), env={})
    with pytest.raises(ConfigError, match="defines no 'load_s'"):
        load(write_project(tmp_path, ok.replace("loads", "load_s")), env={})
    saved = list(sys.path)
    load(write_project(tmp_path, ok), env={})
    assert sys.path == saved


def test_example_config_loads() -> None:
    config = load(REPO / "routemq.toml", env={})
    assert isinstance(config, Config)
    assert config.path == REPO / "routemq.toml"
    assert config.broker.embedded and config.broker.port == 1883
    assert config.fleet.group == "workers"
    by_name = {r.name: r for r in config.routes}
    assert set(by_name) >= {"sensor-data", "telemetry", "alerts"}
    sensors = by_name["sensor-data"]
    assert (sensors.topic, sensors.shared, sensors.workers, sensors.qos) == (
        "sensors/{device_id}/data", True, 3, 1)
    assert config.subscription(sensors) == "$share/workers/sensors/+/data"
    assert config.subscription(by_name["telemetry"]) == "$share/workers/telemetry/+/#"
    assert config.subscription(by_name["alerts"]) == "alerts/+"
    assert by_name["alerts"].handler == "app_routes.alerts:notify"


def test_defaults_apply_when_tables_are_missing(tmp_path: Path) -> None:
    config = load(write_project(tmp_path, ROUTE), env={})
    assert config.broker.embedded and config.broker.host == "127.0.0.1"
    assert config.fleet.log_level == "INFO"
    route = config.routes[0]
    assert (route.shared, route.workers, route.qos, route.group) == (True, 1, 1, None)


def test_env_overrides(tmp_path: Path) -> None:
    path = write_project(tmp_path, '[broker]\npassword_env = "MY_SECRET"\n' + ROUTE)
    env = {
        "MQTT_BROKER": "mqtt.internal", "MQTT_PORT": "8883", "MQTT_USERNAME": "svc",
        "MY_SECRET": "from-file-env", "MQTT_GROUP_NAME": "blue", "ROUTEMQ_LOG_LEVEL": "debug",
    }
    config = load(path, env=env)
    assert (config.broker.host, config.broker.embedded, config.broker.port) == ("mqtt.internal", False, 8883)
    assert (config.broker.username, config.broker.password) == ("svc", "from-file-env")
    assert (config.fleet.group, config.fleet.log_level) == ("blue", "DEBUG")
    assert config.subscription(config.routes[0]) == "$share/blue/a/+"
    assert load(path, env={**env, "MQTT_PASSWORD": "wins"}).broker.password == "wins"
    assert "wins" not in repr(load(path, env={**env, "MQTT_PASSWORD": "wins"}))


def test_empty_env_values_count_as_unset(tmp_path: Path) -> None:
    config = load(write_project(tmp_path, ROUTE), env={"MQTT_BROKER": "", "MQTT_PORT": " "})
    assert config.broker.embedded and config.broker.port == 1883


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_PORT", "1999")
    assert load(write_project(tmp_path, ROUTE)).broker.port == 1999


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("MQTT_PORT", "eighty", "not a number"),
        ("MQTT_PORT", "0", "out of range"),
        ("MQTT_GROUP_NAME", "a/b", "'/'"),
        ("ROUTEMQ_LOG_LEVEL", "LOUD", "not a log level"),
        ("MQTT_BROKER", "h" * 300, "more than the 253 allowed"),
        ("MQTT_PORT", "70000", "out of range"),
    ],
)
def test_bad_env_values(tmp_path: Path, var: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(write_project(tmp_path, ROUTE), env={var: value})
    message = str(info.value)
    assert var in message and words in message and "fix: " in message and "routemq.toml" in message


def test_client_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "build box.local")
    assert client_prefix(load(write_project(tmp_path, ROUTE), env={})) == "rmqtui-build-box-local"
    path = write_project(tmp_path, '[fleet]\nclient_prefix = "edge-1"\n' + ROUTE)
    assert client_prefix(load(path, env={})) == "edge-1"


def test_save_worker_counts_round_trip(tmp_path: Path) -> None:
    source = (REPO / "routemq.toml").read_text()
    for name in ("sensors", "telemetry", "alerts", "__init__"):
        pkg = tmp_path / "app_routes"
        pkg.mkdir(exist_ok=True)
        (pkg / f"{name}.py").write_text((REPO / "app_routes" / f"{name}.py").read_text())
    path = tmp_path / "routemq.toml"
    path.write_text(source)
    os.chmod(path, 0o640)
    config = load(path, env={})

    backup = save_worker_counts(config, {"sensor-data": 5, "telemetry": 1})

    assert backup == tmp_path / "routemq.toml.bak"
    assert backup.read_text() == source
    before, after = tomllib.loads(source), tomllib.loads(path.read_text())
    before["routes"][0]["workers"] = 5
    before["routes"][1]["workers"] = 1
    assert after == before
    assert (path.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    reloaded = load(path, env={})
    assert [r.workers for r in reloaded.routes] == [5, 1, 1]


def _comments(text: str) -> list[str]:
    return [line.partition("#")[2].strip() for line in text.splitlines() if "#" in line]


def test_w_twice_keeps_every_comment_mode_and_backup_mode(tmp_path: Path) -> None:
    from rmqtui.engine.starter import init_project

    init_project(tmp_path)
    path = tmp_path / "routemq.toml"
    original = path.read_text()
    os.chmod(path, 0o600)
    assert len(_comments(original)) > 40, "the init file is the commented one"

    save_worker_counts(load(path, env={}), {"sensor-data": 5, "telemetry": 1})
    save_worker_counts(load(path, env={}), {"sensor-data": 4, "telemetry": 1})

    text, backup = path.read_text(), (tmp_path / "routemq.toml.bak").read_text()
    assert _comments(text) == _comments(original), "a comment was lost"
    assert _comments(backup) == _comments(original), "the .bak lost comments"
    changed = [(a, b) for a, b in zip(original.splitlines(), text.splitlines()) if a != b]
    assert [b.split("#")[0].split() for _, b in changed] == [["workers", "=", "4"], ["workers", "=", "1"]], changed
    assert len(text.splitlines()) == len(original.splitlines())
    assert (path.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "routemq.toml.bak").stat().st_mode & 0o777) == 0o600, "the .bak must keep the mode"
    assert [r.workers for r in load(path, env={}).routes] == [4, 1, 1]


def test_save_keeps_a_bom_and_a_symlink(tmp_path: Path) -> None:
    real = write_project(tmp_path, ROUTE)
    real.write_bytes(b"\xef\xbb\xbf" + real.read_bytes())
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    save_worker_counts(load(link, env={}), {"r1": 3})
    assert link.is_symlink() and real.read_bytes().startswith(b"\xef\xbb\xbf")
    assert load(link, env={}).routes[0].workers == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_save_as_root_keeps_the_owner(tmp_path: Path) -> None:
    path = write_project(tmp_path, ROUTE)
    os.chown(path, 65534, 65534)
    os.chmod(path, 0o640)
    save_worker_counts(load(path, env={}), {"r1": 2})
    for p in (path, tmp_path / "routemq.toml.bak"):
        st = p.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o640), p


def test_save_of_unchanged_counts_leaves_the_text_alone(tmp_path: Path) -> None:
    path = write_project(tmp_path, ROUTE)
    save_worker_counts(load(path, env={}), {"r1": 1})
    assert path.read_text() == ROUTE


def test_save_keeps_edits_made_after_loading(tmp_path: Path) -> None:
    path = write_project(tmp_path, ROUTE)
    config = load(path, env={})
    path.write_text('[fleet]\nlog_level = "DEBUG"\n' + ROUTE)
    save_worker_counts(config, {"r1": 4})
    doc = tomllib.loads(path.read_text())
    assert doc["fleet"]["log_level"] == "DEBUG" and doc["routes"][0]["workers"] == 4


@pytest.mark.parametrize(
    ("toml", "counts", "words"),
    [
        (ROUTE, {"r1": 0}, "at least one worker"),
        (ROUTE, {"ghost": 2}, "no longer in the file"),
        (ROUTE + "shared = false\n", {"r1": 2}, "not shared"),
    ],
)
def test_save_refuses_invalid_counts(tmp_path: Path, toml: str, counts: dict[str, int], words: str) -> None:
    path = write_project(tmp_path, toml)
    config = load(path, env={})
    with pytest.raises(ConfigError, match=words):
        save_worker_counts(config, counts)
    assert path.read_text() == toml
    assert not (tmp_path / "routemq.toml.bak").exists()


def test_line_locator_skips_multiline_strings_and_counts_routes(tmp_path: Path) -> None:
    toml = ('[fleet]\ndead_letter_topic = """\nqos = 9\n"""\n'  # looks like a key, is text
            + ROUTE + ROUTE.replace('"r1"', '"r2"').replace('"a/{x}"', '"b/{x}"')
            + "# a comment\nqos = 7\n")
    with pytest.raises(ConfigError) as info:
        load(write_project(tmp_path, toml), env={})
    assert (info.value.key, info.value.line) == ("routes[1].qos", toml.splitlines().index("qos = 7") + 1)
