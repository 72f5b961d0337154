"""The traps RouteMQ routes fall into, found from discovered route data (pure, no imports of the project).

Errors stop ``rmqtui init --from-routemq`` and make ``rmqtui check --routemq-app``
exit non-zero; warnings are printed and allowed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rmqtui.engine.topics import TopicError, TopicPattern

from .discover import Discovery, RouteInfo

ERROR = "error"
WARNING = "warning"

_PARAM = re.compile(r"{([^/]+)}")  # RouteMQ's own parameter syntax (one level, any characters)
_REGEX_META = re.compile(r"[.^$*+?()\[\]|\\]")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem of one route: where it was registered, what is wrong, how to fix it."""

    level: str
    where: str
    topic: str
    problem: str
    fix: str

    def render(self) -> str:
        """``where: level: route 'topic': problem`` then ``fix: ...``."""
        return f"{self.where}: {self.level}: route {self.topic!r}: {self.problem}\n  fix: {self.fix}"


def routemq_regex(topic: str) -> re.Pattern[str] | None:
    """The regular expression RouteMQ's ``Route`` compiles for ``topic`` (``None`` if it is invalid)."""
    try:
        return re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", topic) + "$")
    except re.error:
        return None


def routemq_filter(topic: str) -> str:
    """The subscription filter RouteMQ derives from ``topic`` (``{x}`` → ``+``, even inside a level)."""
    return _PARAM.sub("+", topic)


def check_routes(discovery: Discovery) -> list[Finding]:
    """Every finding for the discovered project, errors first."""
    findings: list[Finding] = []
    where_dir = str(discovery.directory.joinpath(*discovery.routers.split(".")))
    if not discovery.routes:
        findings.append(Finding(ERROR, where_dir, "", "no routes found", "define `router = Router()` and "
                                f"`router.on(...)` calls in a module of {discovery.routers} (module names "
                                "starting with _ are skipped, as RouteMQ does)"))
    for file in discovery.skipped:
        findings.append(Finding(WARNING, file, "", "this router file has no module-level `router = Router()`, "
                                "so RouteMQ and rmqtui ignore it", "name its Router `router`, or start the "
                                "file name with _ if it is not a router"))
    for route in discovery.routes:
        findings += check_route(route)
    findings += check_overlaps(discovery.routes)
    findings.sort(key=lambda f: f.level != ERROR)
    return findings


def check_route(route: RouteInfo) -> list[Finding]:
    """The problems of one route on its own."""
    out: list[Finding] = []

    def add(level: str, problem: str, fix: str) -> None:
        out.append(Finding(level, route.where, route.topic, problem, fix))

    levels = route.topic.split("/")
    partial = [lv for lv in levels if "{" in lv and not re.fullmatch(r"{[A-Za-z_][A-Za-z0-9_]*}", lv)]
    if partial:
        add(ERROR, f"the level {partial[0]!r} is not a whole-level parameter: RouteMQ subscribes to the "
            f"invalid filter {routemq_filter(route.topic)!r}, which makes paho drop the connection",
            "give the parameter its own level, e.g. 'dev/{id}' instead of 'dev-{id}', and use a "
            "parameter name made of letters, digits and _")
    else:
        try:
            TopicPattern.parse(route.topic)
        except TopicError as e:
            add(ERROR, str(e), "write a topic with literal levels and {name} parameters")
    regex = routemq_regex(route.topic)
    if regex is None:
        add(ERROR, "RouteMQ cannot compile its pattern (a regular-expression error), so it fails at start",
            "remove regular-expression characters such as ( [ * from the topic")
    elif not partial:
        sample = _PARAM.sub("x", route.topic)
        if "+" in levels or "#" in levels or not regex.match(sample):
            add(ERROR, f"RouteMQ's dispatch never matches this route's own topics (e.g. {sample!r}): every "
                "message would fail with 'No route found'",
                "use {name} parameters instead of + or #, and no regular-expression characters")
        elif _REGEX_META.search(_PARAM.sub("", route.topic)):
            loose = _PARAM.sub("x", route.topic.replace(".", "X"))
            add(WARNING, "RouteMQ does not escape its pattern: " + (
                f"it also matches {loose!r}" if regex.match(loose) and loose != sample else
                "regular-expression characters in it change what matches") +
                "; under rmqtui the broker's filter decides what arrives, so only these topics are "
                "dispatched", "avoid . * + ? ( ) [ ] in topic levels")
    if not route.is_async:
        add(ERROR, f"the handler {route.handler} is not `async def`: RouteMQ awaits it, so every message "
            "fails with a TypeError (RouteMQ only finds out at message time)",
            "declare the handler `async def`")
    for name in route.sync_middleware:
        add(ERROR, f"the middleware {name}.handle is not `async def`: the chain awaits it, so every message "
            "fails", f"declare {name}.handle `async def`")
    if route.qos not in (0, 1, 2):
        add(ERROR, f"qos {route.qos} is not an MQTT QoS", "use qos=0, 1 or 2")
    if route.shared and route.worker_count < 1:
        add(ERROR, f"worker_count={route.worker_count}: no worker would serve this route",
            "use worker_count=1 or more")
    return out


def check_overlaps(routes: Sequence[RouteInfo]) -> list[Finding]:
    """Routes whose filters can both match one topic."""
    out: list[Finding] = []
    for i, first in enumerate(routes):
        for second in routes[i + 1:]:
            if first.topic == second.topic:
                out.append(Finding(ERROR, second.where, second.topic, f"the same topic is registered twice "
                                   f"(first at {first.where}); RouteMQ only ever dispatches to the first",
                                   "remove one of the two registrations"))
            elif _filters_overlap(routemq_filter(first.topic), routemq_filter(second.topic)):
                out.append(Finding(WARNING, second.where, second.topic, f"overlaps {first.topic!r} "
                                   f"({first.where}): a message matching both is delivered to both routes; "
                                   "RouteMQ then runs the first route's handler twice, rmqtui runs each "
                                   "route's own handler once", "make the patterns disjoint (e.g. a distinct "
                                   "literal level), or accept that both routes see such messages"))
    return out


def _filters_overlap(a: str, b: str) -> bool:
    """Whether some topic matches both MQTT filters."""
    la, lb = a.split("/"), b.split("/")
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and x != "+" and y != "+":
            return False
    return True
