"""The command-line side: ``rmqtui init --from-routemq DIR`` and ``rmqtui check --routemq-app DIR``.

Each returns an exit status and prints to stdout (results) or stderr (problems),
never a traceback: 0 ok, 2 when the project has errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .checks import ERROR, WARNING, Finding, check_routes
from .discover import Discovery, discover
from .generate import BINDING_MODULE, CONFIG_NAME, bindings, bound_topics, write_project_files
from .project import DEFAULT_ROUTERS, ProjectError

EXIT_PROBLEMS = 2


def _discover(directory: Path | str, routers: str) -> Discovery | None:
    try:
        return discover(directory, routers)
    except ProjectError as e:
        print(f"rmqtui: {e}", file=sys.stderr)
        return None


def _print_findings(findings: list[Finding]) -> bool:
    """Print findings to stderr; True when one of them is an error."""
    for f in findings:
        print(f.render(), file=sys.stderr)
    return any(f.level == ERROR for f in findings)


def _report(discovery: Discovery) -> list[Finding]:
    """The checks, plus whether the generated binding module still matches the routers."""
    findings = check_routes(discovery)
    binding = discovery.directory / f"{BINDING_MODULE}.py"
    topics = bound_topics(binding) if binding.exists() else None
    if topics is None:
        return findings
    regenerate = f"regenerate: remove {CONFIG_NAME} and {binding.name}, then run `rmqtui init --from-routemq`"
    current = {r.topic for r in discovery.routes}
    for topic in sorted(current - topics):
        findings.append(Finding(WARNING, str(binding), topic, "this RouteMQ route is not in the generated "
                                "files, so rmqtui does not run it", regenerate))
    for topic in sorted(topics - current):
        findings.append(Finding(ERROR, str(binding), topic, "bound in the generated files but no longer a "
                                "RouteMQ route: its workers would fail at start", regenerate))
    return findings


def _write(discovery: Discovery) -> None:
    written, kept = write_project_files(discovery)
    for path in kept:
        print(f"kept existing {path} (remove it to regenerate)")
    for path in written:
        print(f"wrote {path}")
    if written:
        for b in bindings(discovery.routes):
            r = b.route
            pool = f"shared, {r.worker_count} worker(s)" if r.shared else "not shared, 1 worker"
            print(f"  {b.name}: {r.topic}  qos {r.qos}, {pool}")


def _checked_write(directory: Path | str, routers: str, refusal: str) -> Discovery | None:
    """Discover and check the project; write its missing files unless there are errors."""
    discovery = _discover(directory, routers)
    if discovery is None:
        return None
    if _print_findings(_report(discovery)):
        print(f"rmqtui: {refusal}: fix the errors above first", file=sys.stderr)
        return None
    _write(discovery)
    return discovery


def init_from_routemq(directory: Path | str, routers: str = DEFAULT_ROUTERS) -> int:
    """Discover the project's routes and write ``routemq.toml`` + the binding module into it."""
    discovery = _checked_write(directory, routers, "nothing written")
    if discovery is None:
        return EXIT_PROBLEMS
    print(f"next: rmqtui -c {discovery.directory / CONFIG_NAME}")
    return 0


def check_routemq_app(directory: Path | str, routers: str = DEFAULT_ROUTERS) -> int:
    """Report the project's traps, and whether its generated files are out of date."""
    discovery = _discover(directory, routers)
    if discovery is None:
        return EXIT_PROBLEMS
    findings = _report(discovery)
    failed = _print_findings(findings)
    shared = sum(r.worker_count for r in discovery.routes if r.shared)
    print(f"{discovery.directory}: {len(discovery.routes)} RouteMQ routes ({shared} shared workers), "
          f"{sum(f.level == ERROR for f in findings)} errors, {sum(f.level != ERROR for f in findings)} warnings")
    return EXIT_PROBLEMS if failed else 0


def config_for_app(directory: Path | str, routers: str = DEFAULT_ROUTERS) -> Path | None:
    """For ``rmqtui --routemq-app DIR``: check the project, write its files when missing, return
    its ``routemq.toml``; ``None`` (after printing why) when the project has errors."""
    discovery = _checked_write(directory, routers, "not started")
    return None if discovery is None else discovery.directory / CONFIG_NAME


def load_config_with_dotenv(path: Path, load, environ=None):
    """``load(path, env=...)`` with the ``.env`` beside ``path`` under the real environment, plus
    RouteMQ's other names (TLS, client id, ``LOG_LEVEL``).  Raises the loader's error, or
    :class:`~.dotenv.DotEnvError`."""
    import os

    from .dotenv import apply_settings, project_env

    env, settings = project_env(Path(path).absolute().parent, os.environ if environ is None else environ)
    return apply_settings(load(path, env=env), settings)
