"""The static check of a route's ``handler = "module:function"``.

The supervisor never imports or runs project or installed-package code (a
broken handler may only fail its worker), so this finds the module's source
file the way the import system would, without importing any package on the
way, and reads it with :mod:`ast`.
"""

from __future__ import annotations

import ast
import difflib
import importlib.machinery
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
MODULE_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*\Z")
_HANDLER_RE = re.compile(rf"({_IDENT}(?:\.{_IDENT})*):({_IDENT})\Z")

Fail = Callable[[str, str, str], ConfigError]


def check_handler(fail: Fail, config_path: Path, key: str, route: str, handler: str, package: str) -> str:
    """Check ``module:function`` statically; returns it with the module fully qualified.

    A module not found as written is looked up inside ``fleet.handlers``, so
    ``sensors:process_data`` means ``app_routes.sensors:process_data``.
    ``fail(key, problem, fix)`` builds the error for a key of the config.
    """
    root = config_path.parent
    m = _HANDLER_RE.match(handler)
    if not m:
        raise fail(key, f"route {route!r}: handler {handler!r} is not in 'module:function' form",
                   'write e.g. handler = "app_routes.sensors:process_data"')
    module, function = m.groups()
    found, source = find_module(root, module)
    if not found and package and not module.startswith(package + "."):
        found, source = find_module(root, f"{package}.{module}", local_only=True)
        if found:
            module = f"{package}.{module}"
    if not found:
        raise fail(key, f"route {route!r}: handler module {module!r} was not found "
                   f"(looked in {root} and the installed packages)",
                   f"create {root / Path(*module.split('.'))}.py or fix the module name")
    if source is not None:
        _check_function(fail, config_path, key, route, module, function, source)
    return f"{module}:{function}"


def find_module(root: Path, module: str, *, local_only: bool = False) -> tuple[bool, Path | None]:
    """(found, source file); source is ``None`` for a module without Python source to read.

    Looks in the config's directory first.  Only a module whose top-level
    package is not there is searched on ``sys.path``, one level at a time
    through the packages' search locations, so no ``__init__`` ever runs.
    """
    parts = module.split(".")
    for candidate in (root.joinpath(*parts[:-1], parts[-1] + ".py"), root.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return True, candidate
    if local_only or (root / parts[0]).exists() or (root / f"{parts[0]}.py").exists():
        return False, None
    if parts[0] in sys.builtin_module_names:
        return len(parts) == 1, None
    spec = _top_level_spec(parts[0], root)
    for i in range(1, len(parts)):
        locations = spec.submodule_search_locations if spec is not None else None
        if locations is None:
            return False, None
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), list(locations))
    if spec is None:
        return False, None
    origin = spec.origin
    if origin and origin.endswith(".py"):
        return True, Path(origin)
    if spec.submodule_search_locations is not None and not origin:
        return False, None  # a namespace package: a directory, not a module with functions
    return True, None  # compiled or frozen: nothing to check statically


def _top_level_spec(name: str, root: Path):
    spec = importlib.machinery.PathFinder.find_spec(name, [str(root), *sys.path])
    if spec is not None:
        return spec
    # Frozen modules and editable installs have finders of their own; asking them for a
    # top-level name locates it without running it.
    for finder in sys.meta_path:
        if finder is importlib.machinery.PathFinder or not hasattr(finder, "find_spec"):
            continue
        try:
            spec = finder.find_spec(name, None)
        except Exception:  # a third-party finder's own failure: the module counts as not found
            spec = None
        if spec is not None:
            return spec
    return None


def _check_function(fail: Fail, config_path: Path, key: str, route: str, module: str, function: str,
                    source: Path) -> None:
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except SyntaxError as e:
        raise ConfigError(source, f"handler module {module!r} of route {route!r} "
                          f"(in {config_path}) has a syntax error: {e.msg}",
                          "fix the syntax error; workers could not import this module",
                          line=e.lineno, key=key) from None
    except (ValueError, OSError) as e:  # NUL bytes in the source, an unreadable file
        raise ConfigError(source, f"handler module {module!r} of route {route!r} cannot be "
                          f"parsed: {e}", "fix the file; workers could not import it", key=key) from None
    names = _top_level_names(tree.body)
    if function in names:
        return
    close = difflib.get_close_matches(function, sorted(names), n=1, cutoff=0.6)
    hint = f"did you mean {module}:{close[0]}? otherwise " if close else ""
    raise fail(key, f"route {route!r}: module {module!r} ({source}) defines no {function!r}",
               f"{hint}define `def {function}(msg):` at the top level of {source.name}")


def _top_level_names(body: list[ast.stmt]) -> set[str]:
    """Names bound at module level, looking into if/try/with blocks as Python would run them."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.AsyncWith)):
            for block in ("body", "orelse", "finalbody"):
                names |= _top_level_names(getattr(node, block, []))
            for h in getattr(node, "handlers", []):
                names |= _top_level_names(h.body)
    return names
