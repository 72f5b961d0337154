"""Checks of single values against their :class:`~.model.Setting` and MQTT's limits.

Each check returns ``None`` or ``(problem, fix)``, so the file loader and the
environment overrides word their errors the same way from one rule.
"""

from __future__ import annotations

import math
import re
from typing import Any

import tomli_w

from ..topics import TopicError, TopicPattern, shared_filter
from .model import MAX_TOPIC_BYTES, MAX_TOPIC_LEVELS, Setting

Problem = tuple[str, str] | None

_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_NUMBER_RE = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
ROUTE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
CLIENT_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]*\Z")


def describe(value: Any) -> str:
    """A value as the operator wrote it: ``the string '1883'``, ``a table``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {_short(value)!r}"
    if isinstance(value, (int, float)):
        return f"the number {_short(repr(value))}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def check_type(key: str, spec: Setting, value: Any, default: Any = None) -> Problem:
    """Is ``value`` of the declared kind (a bool is not an int, an int is a float)?"""
    kind = spec.kind
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if ok:
        return None
    return f"{key} must be {_KIND_NAMES[kind]}, got {describe(value)}", _type_fix(key, kind, value,
                                                                          spec.example if spec.example is not None
                                                                          else default)


def _type_fix(key: str, kind: type, value: Any, example: Any) -> str:
    if isinstance(value, str) and kind in (int, float) and _NUMBER_RE.fullmatch(value.strip()):
        return f"remove the quotes: {key} = {value.strip()}"
    if kind is bool:
        return f"write {key} = true or {key} = false (no quotes)"
    if kind is int and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return f"write a whole number: {key} = {int(value)}"
    sample = tomli_w.dumps({key: example}).strip() if example is not None else f"{key} = ..."
    return f"write it as {_KIND_NAMES[kind]}, e.g. {sample}"


def check_value(key: str, spec: Setting, value: Any) -> Problem:
    """Range, allowed values and length of a value already of the right type."""
    if isinstance(value, float) and not math.isfinite(value):
        return (f"{key} = {value!r} is not a finite number (allowed: {_num(spec.lo)} to {_num(spec.hi)}"
                f"{spec.unit})", spec.fix)
    if spec.choices:
        probe = value.upper() if isinstance(value, str) and key.endswith("log_level") else value
        if probe not in spec.choices:
            allowed = ", ".join(str(c) for c in spec.choices)
            return f"{key} {_show(value)} is not one of the allowed values ({allowed})", spec.fix
    if spec.lo is not None and not spec.lo <= value <= spec.hi:
        return (f"{key} {_show(value)} is out of range (allowed: {_num(spec.lo)} to {_num(spec.hi)}{spec.unit})",
                spec.fix)
    if isinstance(value, str):
        if spec.nonempty and not value.strip():
            return f"{key} is empty", spec.fix
        if spec.max_len is not None and len(value) > spec.max_len:
            return f"{key} is {len(value)} characters long, more than the {spec.max_len} allowed", spec.fix
    return None


def _show(value: Any) -> str:
    return repr(_short(value)) if isinstance(value, str) else _short(str(value))


def check_group(key: str, group: str) -> Problem:
    """A share group usable in ``$share/<group>/...``."""
    try:
        shared_filter(group, "x")
    except TopicError as e:
        return str(e), f'use a plain name such as {key.rpartition(".")[2]} = "workers"'
    return None


def check_topic_limits(what: str, topic: str, levels: int) -> str | None:
    """MQTT's 65,535 bytes and Mosquitto's 200 levels, for a topic or filter."""
    size = len(topic.encode("utf-8"))
    if size > MAX_TOPIC_BYTES:
        return f"{what} is {size} bytes long, more than MQTT's limit of {MAX_TOPIC_BYTES} bytes"
    if levels > MAX_TOPIC_LEVELS:
        return (f"{what} has {levels} levels, more than Mosquitto's limit of {MAX_TOPIC_LEVELS} "
                "(the broker would refuse it)")
    return None


def check_route_topic(route: str, topic: str) -> Problem:
    """A route's pattern: parseable, one parameter per level, within MQTT's limits."""
    fix = ('write a topic such as "sensors/{device_id}/data" (one {name} per level, {rest...} only last)')
    for level in topic.split("/"):
        if level.count("{") > 1 and level.count("{") == level.count("}"):
            return (f"route {route!r}: the level {_short(level)!r} holds {level.count('{')} parameters; "
                    "a parameter must fill its whole level", "put each parameter in its own level, "
                    "as in 'a/{x}/{y}', or capture the level once as {name} and split it in the handler")
    try:
        pattern = TopicPattern.parse(topic)
    except TopicError as e:
        return f"route {route!r}: {e}", fix
    too_big = check_topic_limits("the topic", pattern.filter, pattern.filter.count("/") + 1)
    if too_big:
        return f"route {route!r}: {too_big}", "use a shorter topic with fewer levels"
    return None


def check_dead_letter_topic(topic: str) -> Problem:
    """A topic one can publish to (``{route}`` is filled in per route), or ``""``."""
    if not topic:
        return None
    probe = topic.replace("{route}", "r")
    fix = 'use a plain topic, optionally with {route}, e.g. "rmqtui/dead/{route}", or "" to only log them'
    if any(c in probe for c in "+#{}\x00") or probe.startswith("$"):
        return f"dead_letter_topic {_short(topic)!r} is not a topic one can publish to", fix
    too_big = check_topic_limits("dead_letter_topic", probe, probe.count("/") + 1)
    return (too_big, fix) if too_big else None
