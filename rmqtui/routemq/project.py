"""A RouteMQ project inside the current process: ``.env``, ``sys.path`` and its routers.

Runs only in processes that may import user code: the discovery subprocess and
the workers.  Routers are imported the way RouteMQ's registry finds them (every
public module of ``app.routers``, in file-name order, each with a module-level
``router``), but strictly: where RouteMQ logs an error and falls back to an empty
router, this raises :class:`ProjectError` with the file, line, error and fix.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dotenv import DotEnvError, dotenv_overrides, read_dotenv

DEFAULT_ROUTERS = "app.routers"  # RouteMQ's default router_directory


class ProjectError(Exception):
    """The project cannot be loaded: where, what went wrong, and how to fix it."""

    def __init__(self, where: str, problem: str, fix: str) -> None:
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem}\n  fix: {fix}")


@dataclass(frozen=True, slots=True)
class LoadedRoute:
    """One RouteMQ ``Route`` with the router module that registered it."""

    route: Any  # routemq.router.Route
    module: str
    file: str
    line: int | None  # the router.on(...) call, when it was recorded


def prepare_process(directory: Path) -> dict[str, str]:
    """Load ``directory/.env`` into ``os.environ`` (never overriding it) and put the project first on
    ``sys.path``; returns the variables that were added.  Must run before RouteMQ is imported:
    some of its modules read the environment at import time."""
    directory = Path(directory).resolve()
    try:
        added = dotenv_overrides(read_dotenv(directory / ".env", os.environ), os.environ)
    except DotEnvError as e:
        raise ProjectError(f"{e.path}:{e.line}" if e.line else e.path, e.problem, e.fix) from None
    os.environ.update(added)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    return added


def load_routes(directory: Path, package: str = DEFAULT_ROUTERS, *, record_lines: bool = False,
                skipped: list[str] | None = None) -> list[LoadedRoute]:
    """Import every router module of ``package`` and return their routes in RouteMQ's order.

    ``record_lines`` wraps ``Router.on`` while importing to remember each route's
    ``file:line`` (discovery only; workers skip it).  Router files without a
    module-level ``router`` (which RouteMQ skips with a log line) go to ``skipped``.
    """
    directory = Path(directory).resolve()
    try:
        from routemq.router import Router
    except ImportError as e:
        raise ProjectError("routemq", f"RouteMQ cannot be imported: {e}",
                           "install it next to rmqtui: pip install 'rmqtui[routemq]'") from None
    where = directory.joinpath(*package.split("."))
    try:
        routers = importlib.import_module(package)
    except ModuleNotFoundError as e:
        if e.name and package.startswith(e.name):
            raise ProjectError(str(where), f"there is no package {package!r} in {directory}",
                               f"point at the project directory (the one holding {package.split('.')[0]}/), "
                               f"or create {where}/__init__.py") from None
        raise _import_error(directory, package, e) from None
    except Exception as e:  # noqa: BLE001 - any failure in the package's __init__ is reported
        raise _import_error(directory, package, e) from None
    paths = list(getattr(routers, "__path__", []))
    if not paths:
        raise ProjectError(str(where), f"{package} is a module, not a package of router modules",
                           f"make {where} a directory with one router module per file")
    lines: dict[int, tuple[str, int]] = {}
    original_on = Router.on
    if record_lines:
        def on(self, topic, *args, **kwargs):
            original_on(self, topic, *args, **kwargs)
            for frame in reversed(traceback.extract_stack()[:-1]):
                if Path(frame.filename).resolve().is_relative_to(directory):
                    lines[id(self.routes[-1])] = (frame.filename, frame.lineno or 0)
                    break
        Router.on = on
    loaded: list[LoadedRoute] = []
    try:
        for info in pkgutil.iter_modules(paths):
            if info.ispkg or info.name.startswith("_"):
                continue  # RouteMQ's registry skips these too
            name = f"{package}.{info.name}"
            try:
                module = importlib.import_module(name)
            except Exception as e:  # noqa: BLE001 - reported with its file and line
                raise _import_error(directory, name, e) from None
            router = getattr(module, "router", None)
            file = getattr(module, "__file__", "") or name
            if not isinstance(router, Router):
                if skipped is not None:
                    skipped.append(file)
                continue
            for route in router.routes:
                found = lines.get(id(route))
                loaded.append(LoadedRoute(route, name, found[0] if found else file,
                                          found[1] if found else None))
    finally:
        Router.on = original_on
    return loaded


def _import_error(directory: Path, module: str, exc: BaseException) -> ProjectError:
    """Name the project file and line where importing ``module`` failed."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).resolve().is_relative_to(directory)]
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}"
    elif frames:
        where = f"{frames[-1].filename}:{frames[-1].lineno}"
    else:
        where = str(directory.joinpath(*module.split(".")))
    what = f"importing {module} failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        fix = (f"install {exc.name!r} in rmqtui's environment, or fix the import "
               "(the project directory is on sys.path, as when RouteMQ runs it)")
    else:
        fix = "fix the error at that line; the workers import the same modules"
    return ProjectError(where, what, fix)
