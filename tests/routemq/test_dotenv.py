"""The .env loader: RouteMQ's names, never over the real environment, errors with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmqtui.engine.config import load
from rmqtui.routemq.dotenv import (DotEnvError, apply_settings, dotenv_overrides, project_env, read_dotenv,
                                   routemq_settings)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text)
    return path


def test_parses_quotes_comments_export_and_expansion(tmp_path):
    env = read_dotenv(write(tmp_path, '# comment\n\nexport A=1\nB = two words  # trailing\nC="quoted # not a comment"\n'
                                     "D='${A} literal'\nE=${A}-${MISSING:-dflt}\nF=\"line\\nbreak\"\nG=\nA=3\n"), {})
    assert env.values == {"A": "3", "B": "two words", "C": "quoted # not a comment", "D": "${A} literal",
                          "E": "1-dflt", "F": "line\nbreak", "G": ""}, f"parsed {env.values}"
    assert env.line_of("A") == 10, "the last assignment's line is the one reported"
    assert read_dotenv(tmp_path / "missing.env").values == {}, "a missing .env is empty, not an error"


def test_the_real_environment_always_wins(tmp_path):
    env = read_dotenv(write(tmp_path, "MQTT_PORT=1999\nMQTT_GROUP_NAME=from_file\n"))
    assert dotenv_overrides(env, {"MQTT_PORT": "2000"}) == {"MQTT_GROUP_NAME": "from_file"}, \
        "a variable set in the environment must not be overridden by .env"


def test_routemq_names_map_to_config_keys(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    env = {"MQTT_BROKER": "broker.example", "MQTT_PORT": "8883", "MQTT_USERNAME": "u", "MQTT_PASSWORD": "p",
           "MQTT_TLS_ENABLED": "true", "MQTT_TLS_CA_CERTS": "ca.pem", "MQTT_TLS_INSECURE": "yes",
           "MQTT_CLIENT_ID": "my-app", "MQTT_GROUP_NAME": "grp", "LOG_LEVEL": "warn"}
    dotenv = read_dotenv(write(tmp_path, "".join(f"{k}={v}\n" for k, v in env.items())))
    s = routemq_settings(env, dotenv)
    assert s == {"broker.host": "broker.example", "broker.embedded": False, "broker.port": 8883,
                 "broker.username": "u", "broker.password": "p", "broker.tls.ca": str(tmp_path / "ca.pem"),
                 "broker.tls.insecure": True, "fleet.client_prefix": "my-app", "fleet.group": "grp",
                 "fleet.log_level": "WARNING"}, f"settings {s}"
    assert routemq_settings({"LOG_LEVEL": "DEBUG", "ROUTEMQ_LOG_LEVEL": "error"})["fleet.log_level"] == "ERROR", \
        "ROUTEMQ_LOG_LEVEL (rmqtui's documented name) wins over LOG_LEVEL"


@pytest.mark.parametrize("text, line, words", [
    ("A=1\nnot a line\n", 2, "is not a NAME=value line"),
    ('A="open\n', 1, "no closing"),
    ("X=1\nMQTT_PORT=abc\n", 2, "not a TCP port"),
    ("MQTT_CLIENT_ID=has space\n", 1, "client-id prefix"),
    ("MQTT_GROUP_NAME=a/b\n", 1, "share group"),
    ("LOG_LEVEL=LOUD\n", 1, "not a log level"),
])
def test_bad_values_name_file_line_and_fix(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(DotEnvError) as info:
        project_env(tmp_path, {})
    e = info.value
    assert (e.path, e.line) == (str(path), line), f"error at {e.path}:{e.line}, wanted line {line}"
    assert words in e.problem and e.fix, f"message: {e}"


def test_bad_value_from_the_environment_names_the_variable(tmp_path):
    write(tmp_path, "MQTT_PORT=1883\n")
    with pytest.raises(DotEnvError) as info:
        project_env(tmp_path, {"MQTT_PORT": "x"})
    assert "environment variable MQTT_PORT" in str(info.value) and info.value.line is None, str(info.value)


def test_applies_to_a_loaded_config(tmp_path):
    (tmp_path / "h.py").write_text("def f(msg):\n    pass\n")
    config = tmp_path / "routemq.toml"
    config.write_text('[[routes]]\nname = "r"\ntopic = "a/{x}"\nhandler = "h:f"\n')
    write(tmp_path, "MQTT_BROKER=10.9.9.9\nMQTT_CLIENT_ID=site-a\nLOG_LEVEL=DEBUG\nMQTT_GROUP_NAME=g2\n")
    env, settings = project_env(tmp_path, {"MQTT_GROUP_NAME": "real"})
    c = apply_settings(load(config, env=env), settings)
    assert (c.broker.host, c.broker.embedded) == ("10.9.9.9", False), "MQTT_BROKER from .env selects that broker"
    assert (c.fleet.client_prefix, c.fleet.log_level, c.fleet.group) == ("site-a", "DEBUG", "real"), \
        f"got {c.fleet}"
