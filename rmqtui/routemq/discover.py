"""Route discovery in a throw-away subprocess, so the caller never imports project code.

:func:`discover` runs ``python -m rmqtui.routemq.discover DIR`` and returns the
routes as :class:`RouteInfo` (pattern, qos, shared, worker_count, handler,
middleware, where it was registered).  The child loads ``.env``, puts ``DIR``
on ``sys.path`` and imports the routers with :func:`.project.load_routes`;
whatever the project prints goes to stderr, the JSON answer to stdout.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .project import DEFAULT_ROUTERS, ProjectError, load_routes, prepare_process

DISCOVERY_TIMEOUT = 60.0  # importing RouteMQ alone takes ~0.5 s; a project may connect somewhere


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """What rmqtui needs to know about one RouteMQ route (plain data, JSON round-trip)."""

    topic: str
    qos: int
    shared: bool
    worker_count: int
    handler: str  # "module:qualname"
    is_async: bool
    middleware: tuple[str, ...] = ()
    sync_middleware: tuple[str, ...] = ()  # middleware whose handle() is not async
    file: str = ""  # where router.on(...) registered it
    line: int | None = None
    module: str = ""  # the router module

    @property
    def where(self) -> str:
        """``file:line`` of the registration, for messages."""
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class Discovery:
    """The outcome of one discovery: the routes, in RouteMQ's dispatch order."""

    directory: Path
    routers: str
    routes: tuple[RouteInfo, ...]
    skipped: tuple[str, ...] = ()  # router files without a module-level router
    env_added: tuple[str, ...] = field(default=())  # variables .env provided


def discover(directory: Path | str, routers: str = DEFAULT_ROUTERS, *, timeout: float = DISCOVERY_TIMEOUT,
             python: str | None = None) -> Discovery:
    """Discover the routes of the RouteMQ project in ``directory``; raises :class:`ProjectError`."""
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise ProjectError(str(directory), "no such directory", "pass the RouteMQ project's directory")
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])  # so the child imports this same rmqtui
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run([python or sys.executable, "-m", "rmqtui.routemq.discover", str(directory),
                               "--routers", routers], cwd=directory, env=env, capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ProjectError(str(directory), f"importing the routers took longer than {timeout:g}s",
                           "make router modules cheap to import (no network calls at import time)") from None
    try:
        answer = json.loads(done.stdout.decode("utf-8", "replace") or "null")
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise ProjectError(str(directory), f"route discovery exited with status {done.returncode} "
                           "without an answer" + (":\n    " + "\n    ".join(tail) if tail else ""),
                           "run the project once with RouteMQ to see the error, then fix it")
    if "error" in answer:
        e = answer["error"]
        raise ProjectError(e["where"], e["problem"], e["fix"])
    return Discovery(directory, routers, tuple(_route(r) for r in answer["routes"]),
                     tuple(answer.get("skipped", ())), tuple(answer.get("env_added", ())))


def _route(data: dict[str, Any]) -> RouteInfo:
    data = dict(data)
    data["middleware"] = tuple(data.get("middleware", ()))
    data["sync_middleware"] = tuple(data.get("sync_middleware", ()))
    return RouteInfo(**data)


def _describe(loaded) -> dict[str, Any]:
    route = loaded.route
    handler = route.handler
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    module = getattr(handler, "__module__", None) or type(handler).__module__
    middleware = [type(m).__name__ for m in route.middleware]
    sync_mw = [type(m).__name__ for m in route.middleware
               if not inspect.iscoroutinefunction(getattr(m, "handle", None))]
    info = RouteInfo(topic=route.topic, qos=int(route.qos), shared=bool(route.shared),
                     worker_count=int(route.worker_count), handler=f"{module}:{name}",
                     is_async=_is_async(handler), middleware=tuple(middleware),
                     sync_middleware=tuple(sync_mw), file=loaded.file, line=loaded.line, module=loaded.module)
    return asdict(info)


def _is_async(handler: Any) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)
    return inspect.iscoroutinefunction(call)


def main(argv: list[str] | None = None) -> int:
    """The child: print one JSON object (routes, or an error) on the real stdout."""
    ap = argparse.ArgumentParser(prog="python -m rmqtui.routemq.discover")
    ap.add_argument("directory")
    ap.add_argument("--routers", default=DEFAULT_ROUTERS)
    args = ap.parse_args(argv)
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # the project's prints must not corrupt the answer
    try:
        added = prepare_process(Path(args.directory))
        skipped: list[str] = []
        routes = load_routes(Path(args.directory), args.routers, record_lines=True, skipped=skipped)
        answer: dict[str, Any] = {"routes": [_describe(r) for r in routes], "skipped": skipped,
                                  "env_added": sorted(added)}
    except ProjectError as e:
        answer = {"error": {"where": e.where, "problem": e.problem, "fix": e.fix}}
    with os.fdopen(answer_fd, "w") as out:
        json.dump(answer, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
