"""``rmqtui init --from-routemq DIR``: the ``routemq.toml`` equivalent to a RouteMQ project.

Two files are written into the project directory (never over existing ones):
``routemq.toml`` with one ``[[routes]]`` per RouteMQ route (pattern, qos, shared,
``workers = worker_count``), and ``rmqtui_routemq.py``, the binding module whose
handlers dispatch through RouteMQ (see :mod:`.adapter`).  Ordinary rmqtui routes,
so the supervisor, the worker and ``w`` (save counts) need nothing special.
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .discover import Discovery, RouteInfo

BINDING_MODULE = "rmqtui_routemq"
CONFIG_NAME = "routemq.toml"
ROUTEMQ_DEFAULT_GROUP = "mqtt_framework_group"  # RouteMQ's share group when MQTT_GROUP_NAME is unset


@dataclass(frozen=True, slots=True)
class Binding:
    """One rmqtui route for one RouteMQ route."""

    name: str  # the rmqtui route name
    attr: str  # the handler's name in the binding module
    route: RouteInfo


def bindings(routes: tuple[RouteInfo, ...] | list[RouteInfo]) -> list[Binding]:
    """Stable, unique route and handler names derived from the patterns (first registration wins)."""
    out: list[Binding] = []
    names: set[str] = set()
    seen_topics: set[str] = set()
    for route in routes:
        if route.topic in seen_topics:
            continue  # RouteMQ never dispatches to a second registration of a topic
        seen_topics.add(route.topic)
        base = "-".join(p.strip("{}") for p in route.topic.split("/") if p) or "root"
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("_.-")[:90] or "route"
        if not base[0].isalnum():
            base = "r" + base
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.add(name)
        attr = re.sub(r"\W", "_", name)
        out.append(Binding(name, attr if not attr[0].isdigit() else f"r_{attr}", route))
    return out


def config_text(discovery: Discovery) -> str:
    """The ``routemq.toml`` text for ``discovery``."""
    lines = [
        f"# rmqtui's config for the RouteMQ project in this directory ({len(discovery.routes)} routes from "
        f"{discovery.routers}),",
        "# written by `rmqtui init --from-routemq`.  Every route runs RouteMQ's own handler and middleware",
        f"# through {BINDING_MODULE}.py; regenerate both files after changing the routers",
        "# (`rmqtui check --routemq-app .` says when they are out of date).",
        "# .env is read as RouteMQ reads it (MQTT_BROKER, MQTT_PORT, MQTT_USERNAME, MQTT_PASSWORD,",
        "# MQTT_TLS_*, MQTT_CLIENT_ID, MQTT_GROUP_NAME, LOG_LEVEL); the real environment wins over it.",
        "# RouteMQ runs a worker's messages concurrently without a limit; rmqtui handles one at a time per",
        "# worker unless a route sets `concurrency = N` (async handlers in flight per worker).",
        "",
        "[broker]",
        "embedded = true            # a private Mosquitto; MQTT_BROKER (.env or environment) uses yours",
        'host = "127.0.0.1"',
        "port = 1883",
        'protocol = "v3.1.1"        # what RouteMQ speaks (paho\'s default)',
        "",
        "[fleet]",
        f'group = "{ROUTEMQ_DEFAULT_GROUP}"   # RouteMQ\'s default; MQTT_GROUP_NAME overrides it',
        f'handlers = "{BINDING_MODULE}"',
    ]
    for b in bindings(discovery.routes):
        r = b.route
        where = os.path.relpath(r.file, discovery.directory) + (f":{r.line}" if r.line else "")
        lines += ["", f"# {where}: {r.handler}" + (f" (middleware: {', '.join(r.middleware)})"
                                                        if r.middleware else ""),
                  "[[routes]]", f"name = {json.dumps(b.name)}", f"topic = {json.dumps(r.topic)}",
                  f"handler = {json.dumps(f'{BINDING_MODULE}:{b.attr}')}",
                  f"shared = {'true' if r.shared else 'false'}",
                  f"workers = {max(1, r.worker_count) if r.shared else 1}", f"qos = {r.qos}"]
    return "\n".join(lines) + "\n"


def binding_text(discovery: Discovery) -> str:
    """The binding module's source for ``discovery``."""
    lines = [
        f'"""rmqtui\'s handlers for this RouteMQ project (written by `rmqtui init --from-routemq`).',
        "",
        "Each name runs one RouteMQ route through RouteMQ's own router and middleware inside",
        "an rmqtui worker.  Regenerate this file with routemq.toml after changing the routers.",
        '"""',
        "",
        "from rmqtui.routemq.adapter import RouteMQApp",
        "",
        f"app = RouteMQApp(__file__, routers={discovery.routers!r})",
        "",
    ]
    for b in bindings(discovery.routes):
        lines.append(f"{b.attr} = app.handler({b.route.topic!r})")
    return "\n".join(lines) + "\n"


def bound_topics(binding_file: Path) -> set[str] | None:
    """The topics an existing binding module binds (read with :mod:`ast`), ``None`` if unreadable."""
    try:
        tree = ast.parse(binding_file.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    topics = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "handler"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            topics.add(node.args[0].value)
    return topics


def write_project_files(discovery: Discovery) -> tuple[list[Path], list[Path]]:
    """Write ``routemq.toml`` and the binding module into the project; returns (written, kept)."""
    written, kept = [], []
    for name, text in ((CONFIG_NAME, config_text(discovery)), (f"{BINDING_MODULE}.py", binding_text(discovery))):
        target = discovery.directory / name
        try:
            with open(target, "x", encoding="utf-8") as f:  # "x": never overwrite, not even in a race
                f.write(text)
        except FileExistsError:
            kept.append(target)
            continue
        written.append(target)
    return written, kept
