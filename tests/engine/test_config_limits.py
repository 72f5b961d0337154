"""Issue 12 and 9: values that used to pass ``check`` and break the fleet later, one case per hole."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from rmqtui.engine.config import ConfigError, load

HANDLER = "def ok(msg):\n    pass\n"


def route(name: str = "r1", topic: str = "a/{x}", **extra: object) -> str:
    lines = ["", "[[routes]]", f'name = "{name}"', f'topic = "{topic}"', 'handler = "handlers:ok"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


DEEP = "/".join(["l"] * 201)

# (id, file text, the key the error must name, words the message must hold)
HOLES = [
    ("route name of 250 characters", route("n" * 250), "routes[0].name", "at most 100"),
    ("topic deeper than 200 levels", route(topic=DEEP), "routes[0].topic", "limit of 200"),
    ("shared subscription deeper than 200 levels", route(topic="/".join(["l"] * 199)), "routes[0].topic",
     "$share/<group>/ adds 2"),
    ("client_prefix over 65,535 characters", '[fleet]\nclient_prefix = "' + "p" * 70000 + '"\n' + route(),
     "fleet.client_prefix", "more than the 128 allowed"),
    ("workers = 1000000000000000003", route(workers=1000000000000000003), "routes[0].workers", "allowed: 1 to"),
    ("handler_retries unbounded", "[fleet]\nhandler_retries = 1000000000000\n" + route(), "fleet.handler_retries",
     "allowed: 0 to 100"),
    ("heartbeat_interval = nan", "[fleet]\nheartbeat_interval = nan\n" + route(), "fleet.heartbeat_interval",
     "not a finite number"),
    ("drain_timeout = inf", "[fleet]\ndrain_timeout = inf\n" + route(), "fleet.drain_timeout", "not a finite"),
    ("drain_timeout = 1e300", "[fleet]\ndrain_timeout = 1e300\n" + route(), "fleet.drain_timeout",
     "allowed: 0 to 3600s"),
    ("hang_timeout = nan", "[fleet]\nhang_timeout = nan\n" + route(), "fleet.hang_timeout", "not a finite"),
    ("drain_timeout = nan", "[fleet]\ndrain_timeout = nan\n" + route(), "fleet.drain_timeout", "not a finite"),
    ("heartbeat_interval = 1e-9", "[fleet]\nheartbeat_interval = 1e-9\n" + route(), "fleet.heartbeat_interval",
     "allowed: 0.05 to 60s"),
    ("two parameters in one level", route(topic="a/{x}{y}"), "routes[0].topic", "own level"),
    ("more workers than max_workers", "[fleet]\nmax_workers = 4\n" + route(workers=3) + route("r2", "b/{x}", workers=2),
     "routes[1].workers", "max_workers"),
    ("one route over max_workers", route(workers=300), "routes[0].workers", "fleet.max_workers (256)"),
    ("concurrency 0", route(concurrency=0), "routes[0].concurrency", "allowed: 1 to 1000"),
    ("concurrency 1001", route(concurrency=1001), "routes[0].concurrency", "allowed: 1 to 1000"),
    ("route receiving its own dead letters", route(topic="{site}/{device}/{metric}"), "routes[0].topic",
     "dead-letter topic"),
    ("a # route receives dead letters", route(topic="#"), "routes[0].topic", "dead_letter_topic"),
    ("dead-letter topic of 70,000 characters", '[fleet]\ndead_letter_topic = "' + "d" * 70000 + '"\n' + route(),
     "fleet.dead_letter_topic", "65535"),
    ("dead-letter topic deeper than 200 levels", f'[fleet]\ndead_letter_topic = "{DEEP}"\n' + route(),
     "fleet.dead_letter_topic", "limit of 200"),
    ("dead-letter topic with a wildcard", '[fleet]\ndead_letter_topic = "dead/+"\n' + route(),
     "fleet.dead_letter_topic", "publish to"),
    ("two routes, one filter, one group", route("a", "dup/{a}/x") + route("b", "dup/{b}/x"), "routes[1].topic",
     "its own group"),
    ("poison_crashes absurd", "[fleet]\npoison_crashes = 99999999\n" + route(), "fleet.poison_crashes", "1 to 1000"),
    ("max_workers 0", "[fleet]\nmax_workers = 0\n" + route(), "fleet.max_workers", "allowed: 1 to 10000"),
]


def write(tmp_path: Path, text: str | bytes) -> Path:
    (tmp_path / "handlers.py").write_text(HANDLER)
    path = tmp_path / "routemq.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(("text", "key", "words"), [c[1:] for c in HOLES], ids=[c[0] for c in HOLES])
def test_limit_is_checked(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), env={})
    message = str(info.value)
    assert info.value.key == key, message
    assert f"{key}:" in message and "fix: " in message, message
    assert words in message, message
    assert info.value.line is not None, f"no line in {message}"
    assert len(message) < 1000, "the message quotes a huge value in full"


@pytest.mark.parametrize(
    "text",
    [
        '[fleet]\ndead_letter_topic = ""\n' + route(topic="#"),  # "" = dead letters only logged
        route("a", "dup/{a}/x") + route("b", "dup/{b}/x", group='"other"'),
        route("a", "dup/{a}/x", shared="false") + route("b", "dup/{b}/x", shared="false"),
        "[fleet]\nheartbeat_interval = 0.05\nhang_timeout = 0.5\ndrain_timeout = 0\n" + route(concurrency=1000),
        route("n" * 100, topic="/".join(["l"] * 198)),
        route(topic="/".join(["l"] * 200), shared="false"),
    ],
    ids=["empty dead-letter topic", "same filter, other group", "same filter, not shared", "edges", "max sizes",
         "200 levels unshared"],
)
def test_edges_that_stay_legal(tmp_path: Path, text: str) -> None:
    load(write(tmp_path, text), env={})


def test_a_utf8_bom_is_accepted_and_lines_still_count(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + route(qos=1).encode())
    assert load(path, env={}).routes[0].qos == 1
    write(tmp_path, b"\xef\xbb\xbf" + route(qos=7).encode())
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    assert (info.value.key, info.value.line) == ("routes[0].qos", 6)


def test_utf16_is_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="UTF-16"):
        load(write(tmp_path, route().encode("utf-16")), env={})


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    result: list[BaseException] = []
    t = threading.Thread(target=lambda: result.append(pytest.raises(ConfigError, load, fifo, env={}).value))
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader so the test process can exit, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("loading a FIFO blocked")
    assert "not a regular file" in str(result[0])


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused(device: str) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        load(device, env={})


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, route() + "#" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load(path, env={})


def test_deeply_nested_arrays_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nested"):
        load(write(tmp_path, "x = " + "[" * 5000 + "]" * 5000 + "\n"), env={})


def test_handler_lookup_imports_no_package(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "evilpkg").mkdir(parents=True)
    marker = tmp_path / "ran"
    (site / "evilpkg" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (site / "evilpkg" / "mod.py").write_text("def ok(msg):\n    pass\n")
    import sys

    sys.path.insert(0, str(site))
    try:
        project = tmp_path / "project"
        project.mkdir()
        path = project / "routemq.toml"
        path.write_text(route().replace("handlers:ok", "evilpkg.mod:ok"))
        assert load(path, env={}).routes[0].handler == "evilpkg.mod:ok"
        path.write_text(route().replace("handlers:ok", "evilpkg.mod:nope"))
        with pytest.raises(ConfigError, match="defines no 'nope'"):
            load(path, env={})
    finally:
        sys.path.remove(str(site))
    assert not marker.exists(), "checking a handler ran an installed package's __init__"
    assert "evilpkg" not in sys.modules


def test_level_limit_matches_the_real_broker(tmp_path: Path) -> None:
    """The deepest subscription `check` accepts is granted by Mosquitto; two levels more are refused.

    (Mosquitto 2.0 grants a subscription of 201 levels in all, $share/<group>/ included, and refuses
    202: `check` keeps to the documented 200.)"""
    import paho.mqtt.client as mqtt

    from rmqtui.engine.broker import EmbeddedBroker, free_port

    from .conftest import wait_for

    ok = load(write(tmp_path, route(topic="/".join(["l"] * 198))), env={})
    deepest = ok.subscription(ok.routes[0])
    with pytest.raises(ConfigError):
        load(write(tmp_path, route(topic="/".join(["l"] * 199))), env={})
    broker = EmbeddedBroker(tmp_path / "rt", port=free_port())
    broker.start()
    try:
        results = {}
        for name, flt in (("accepted", deepest), ("deeper", deepest + "/l/l")):
            answer: list[str] = []
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"lv-{os.getpid()}-{len(results)}")
            c.on_connect = lambda c, u, f, rc, p, flt=flt: c.subscribe(flt, 1)
            c.on_subscribe = lambda c, u, mid, rcs, p: answer.append(str(rcs[0]))
            c.on_disconnect = lambda c, u, f, rc, p: answer.append(f"disconnected: {rc}")
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            try:
                wait_for(lambda: answer, timeout=10, what=f"the broker's answer to {name}")
            finally:
                c.loop_stop()
                c.disconnect()
            results[name] = answer[0]
    finally:
        broker.stop()
    assert results["accepted"].startswith("Granted"), results
    assert not results["deeper"].startswith("Granted"), results


def _ranged_settings():
    from rmqtui.engine.config import BrokerConfig, FleetConfig, RouteConfig, settings_of

    for section, cls in (("broker", BrokerConfig), ("fleet", FleetConfig), ("routes[0]", RouteConfig)):
        for key, (spec, _default) in settings_of(cls).items():
            if spec.lo is None:
                continue
            bad = [spec.lo - 1, spec.hi + 1] + ([float("nan"), float("inf"), -float("inf")] if spec.kind is float else [])
            for value in bad:
                yield section, key, spec, value


def _toml_value(value: float) -> str:
    if value != value:
        return "nan"
    if value in (float("inf"), -float("inf")):
        return "inf" if value > 0 else "-inf"
    return repr(value)


@pytest.mark.parametrize(("section", "key", "spec", "value"), list(_ranged_settings()),
                         ids=[f"{s}.{k}={_toml_value(v)}" for s, k, _, v in _ranged_settings()])
def test_every_declared_range_is_enforced(tmp_path: Path, section: str, key: str, spec, value: float) -> None:
    """Generated from the declarations: every ranged setting refuses values past both ends and non-finite ones."""
    if section == "routes[0]":
        text = route(**{key: _toml_value(value)})
    else:
        text = f"[{section}]\n{key} = {_toml_value(value)}\n" + route()
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), env={})
    shown = (lambda x: f"{x:g}" if isinstance(x, float) else str(x))
    assert info.value.key == f"{section}.{key}", str(info.value)
    assert f"allowed: {shown(spec.lo)} to {shown(spec.hi)}" in str(info.value), str(info.value)
    assert info.value.fix == spec.fix
