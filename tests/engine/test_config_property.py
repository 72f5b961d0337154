"""Property: any mutation of the example config is either fine or a clear error naming its key.

Hypothesis mutates the example ``routemq.toml`` (values of every type, huge and
non-finite numbers, odd strings, removed and unknown keys, removed and copied
routes); ``rmqtui check`` must exit 0 or 2, never raise, and every error must
name the key it is about.
"""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tomli_w
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmqtui import cli, exitcodes
from rmqtui.engine.config import ConfigError, load

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = tomllib.loads((REPO / "routemq.toml").read_text())
SECTIONS = ("broker", "fleet")

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 3, 65535, 65536, 10**18]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e-9, 1e300, float("nan"), float("inf"), -0.5]),
    st.text(max_size=30),
    st.sampled_from(["", " ", "a/{x}{y}", "#", "+/+/+", "$share/g/x", "a/b" * 150, "x" * 300, "{r...}/a",
                     "v5", "DEBUG", "app_routes.sensors:process_data", "json:loads", "os.path:join",
                     "no.such:thing", "rmqtui/dead/{route}", "\x00", "\ufeff"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=8), scalars, max_size=2))

# A mutation: (what, where, key, value); applied in order to a copy of the example.
mutations = st.tuples(
    st.sampled_from(["set", "delete", "add", "drop_route", "copy_route"]),
    st.sampled_from(["broker", "fleet", "route", "top"]),
    st.one_of(st.sampled_from(["port", "workers", "topic", "name", "handler", "qos", "group", "shared",
                               "heartbeat_interval", "hang_timeout", "drain_timeout", "dead_letter_topic",
                               "max_workers", "client_prefix", "concurrency", "handler_retries", "keepalive",
                               "tls", "log_level", "protocol", "host", "poison_crashes", "embedded"]),
              st.text(min_size=1, max_size=10)),
    values,
    st.integers(min_value=0, max_value=5),
)


def mutate(doc: dict[str, Any], what: str, where: str, key: str, value: Any, index: int) -> None:
    routes = doc.setdefault("routes", [])
    if what == "drop_route" and routes:
        routes.pop(index % len(routes))
        return
    if what == "copy_route" and routes:
        routes.append(copy.deepcopy(routes[index % len(routes)]))
        return
    if where == "route":
        if not routes:
            return
        table = routes[index % len(routes)]
    elif where == "top":
        table = doc
    else:
        table = doc.setdefault(where, {})
        if not isinstance(table, dict):
            return
    if what == "delete":
        table.pop(key, None)
    else:
        table[key] = value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutations, min_size=1, max_size=3))
def test_mutated_example_is_ok_or_a_clear_error(changes) -> None:
    doc = copy.deepcopy(EXAMPLE)
    for change in changes:
        mutate(doc, *change)
    text = tomli_w.dumps(doc)
    path = PROJECT / "routemq.toml"
    path.write_text(text)

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(["check", "-c", str(path)])
    assert status in (exitcodes.OK, exitcodes.BAD_INPUT), err.getvalue()
    assert "Traceback" not in err.getvalue()
    try:
        load(path, env={})
    except ConfigError as e:
        assert status == exitcodes.BAD_INPUT
        assert e.key, f"the error names no key: {e}"
        assert f": {e.key}: " in str(e), str(e)
        assert "fix: " in str(e), str(e)
        assert len(str(e)) < 2000, "a huge value is quoted in full"
    else:
        assert status == exitcodes.OK, err.getvalue()


env_values = st.one_of(st.text(max_size=20), st.sampled_from(["", " ", "0", "1883", "70000", "-1", "nan", "a/b",
                                                             "debug", "LOUD", "h" * 300, "\u00e9", "1e3"]))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["MQTT_BROKER", "MQTT_PORT", "MQTT_USERNAME", "MQTT_PASSWORD",
                                        "MQTT_GROUP_NAME", "ROUTEMQ_LOG_LEVEL"]), env_values))
def test_any_environment_is_ok_or_names_its_variable(env: dict[str, str]) -> None:
    path = PROJECT / "routemq.toml"
    path.write_text(tomli_w.dumps(EXAMPLE))
    try:
        config = load(path, env=env)
    except ConfigError as e:
        assert e.key and e.key.startswith("env ") and e.key[4:] in env, str(e)
        assert "fix: " in str(e) and len(str(e)) < 1000, str(e)
    else:
        assert 1 <= config.broker.port <= 65535


def setup_module() -> None:
    global PROJECT
    PROJECT = Path(tempfile.mkdtemp(prefix="rmqtui-prop-"))
    shutil.copytree(REPO / "app_routes", PROJECT / "app_routes")


def teardown_module() -> None:
    shutil.rmtree(PROJECT, ignore_errors=True)


PROJECT = Path()
