"""Where a route's handlers run: paho's network thread by default, a thread of their own when the route
asks (handler_thread) or when the hang watchdog would let a handler block past the broker's keepalive."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmqtui.engine.config import load
from rmqtui.engine.supervisor.specs import needs_handler_thread


def config(tmp_path: Path, *, route: str = "", fleet: str = "", keepalive: int = 30):
    path = tmp_path / "routemq.toml"
    (tmp_path / "h.py").write_text("def f(msg):\n    pass\n")
    path.write_text(f"""
[broker]
keepalive = {keepalive}

[fleet]
{fleet}

[[routes]]
name = "r"
topic = "t/{{n}}"
handler = "h:f"
{route}
""")
    return load(path, env={})


@pytest.mark.parametrize("route,fleet,keepalive,thread", [
    ("", "", 30, False),  # defaults: hang_timeout 30 s ends a stuck handler before the broker's 45 s
    ("handler_thread = true", "", 30, True),  # the route asks
    ("", "hang_timeout = 45", 30, True),  # a handler may block as long as the broker waits: its own thread
    ("", "hang_timeout = 44", 30, False),
    ("", "hang_timeout = 600", 0, False),  # no keepalive: nothing to miss
])
def test_where_handlers_run(tmp_path, route, fleet, keepalive, thread):
    cfg = config(tmp_path, route=route, fleet=fleet, keepalive=keepalive)
    assert needs_handler_thread(cfg, cfg.routes[0]) is thread


def test_a_quoted_flag_is_refused_with_the_fix(tmp_path):
    from rmqtui.engine.config import ConfigError

    with pytest.raises(ConfigError) as err:
        config(tmp_path, route='handler_thread = "yes"')
    assert "handler_thread" in str(err.value) and "true" in str(err.value)
