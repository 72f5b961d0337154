"""`[fleet] host_id` and RMQTUI_HOST_ID replace the host name in client ids."""

from __future__ import annotations

import pytest

from rmqtui.engine.config import ConfigError, client_prefix, host_id, load

BASE = """
[broker]
embedded = true
[fleet]
group = "workers"
{extra}
[[routes]]
name = "orders"
handler = "app_routes.sensors:process_data"
topic = "orders/#"
workers = 1
"""


def write(tmp_path, extra=""):
    p = tmp_path / "routemq.toml"
    p.write_text(BASE.format(extra=extra))
    return p


def test_host_id_replaces_host_name_in_client_ids(tmp_path, monkeypatch):
    monkeypatch.delenv("RMQTUI_HOST_ID", raising=False)
    cfg = load(write(tmp_path, 'host_id = "edge-7"'))
    assert host_id(cfg) == "edge-7"
    assert client_prefix(cfg) == "rmqtui-edge-7"


def test_env_overrides_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RMQTUI_HOST_ID", "blue_2")
    cfg = load(write(tmp_path, 'host_id = "edge-7"'))
    assert client_prefix(cfg) == "rmqtui-blue_2"


def test_default_is_a_client_id_safe_host_name(tmp_path, monkeypatch):
    monkeypatch.delenv("RMQTUI_HOST_ID", raising=False)
    hid = host_id(load(write(tmp_path)))
    assert hid and all(c.isalnum() or c in "_-" for c in hid) and len(hid) <= 64


@pytest.mark.parametrize("bad", ['host_id = "a b"', 'host_id = "x/y"', f'host_id = "{"h" * 65}"'])
def test_bad_host_id_refused_with_fix(tmp_path, monkeypatch, bad):
    monkeypatch.delenv("RMQTUI_HOST_ID", raising=False)
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, bad))
    assert "host_id" in str(e.value)


def test_bad_env_host_id_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RMQTUI_HOST_ID", "no spaces please")
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path))
    assert "RMQTUI_HOST_ID" in str(e.value)
