"""The fork server's own set-up: done once there, so each worker it forks starts sooner and smaller.

Everything a worker would otherwise do between its fork and :func:`.main.run` is
done here, in the fork server, before any fork:

* the modules a worker imports after the fork anyway are imported here instead
  (shared copy-on-write pages instead of private ones, and no import time per worker);
* the supervisor's ``__main__`` is not re-run in each worker (see :func:`skip_main_rerun`);
* the garbage collector stays off while the preload is imported, and the result
  is frozen without a collection first: a collection frees objects all over the
  preload's pages, and a worker's first allocations would fill those holes, each
  one copying a whole page.
"""

from __future__ import annotations

import codecs
import gc
import importlib

from ..protocol import WORKER_PROCESS_PREFIX

#: Imported by every worker after its fork unless the fork server has them: what unpickling the process
#: needs (the slot's shared message id, its pipe's inherited descriptor), the process title, the idna codec.
AFTER_FORK_MODULES = ("multiprocessing.sharedctypes", "multiprocessing.popen_forkserver", "setproctitle",
                      "encodings.idna")


def begin() -> None:
    """Before the preload's imports: no collection while they build the objects every worker shares."""
    gc.disable()


def finish() -> None:
    """After the preload's imports: import what workers would import after the fork, keep the main
    script out of workers, freeze the preload and turn the collector back on."""
    for name in AFTER_FORK_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # setproctitle is optional
            pass
    codecs.lookup("idna")  # the codec registry's cache entry, not only the module
    skip_main_rerun()
    # the preload's objects never change: keep the workers' collector off them, so their GC headers
    # are not written and the pages stay shared (reference counts still are: nothing stops that in 3.11)
    gc.freeze()
    gc.enable()  # from here on it only sees what the fork server and each worker allocate themselves


def skip_main_rerun() -> None:
    """Make the workers this fork server starts skip the supervisor's ``__main__``.

    A forkserver child re-runs the parent's main script before it unpickles its target, unless the fork
    server imported it already, which CPython's fork server did not do until 2025 (it looked for a
    ``main_path`` key that the preparation data names ``init_main_from_path``, so the ``"__main__"``
    preload was a no-op: CPython issues 126631 and 137996, fixed in 3.13 and later point releases).
    For the ``rmqtui`` console script that is ``from rmqtui.cli import main`` in every worker: the
    control server, the command line, twenty modules a worker never uses (about 4 MB of USS each).
    A worker needs nothing from ``__main__``: its target and arguments are rmqtui's own and its
    handler is imported by name.  Other processes of this fork server keep the usual behaviour.
    """
    from multiprocessing import spawn

    prepare = spawn.prepare
    if getattr(prepare, "rmqtui_lean", False):
        return

    def lean_prepare(data: dict) -> None:
        if str(data.get("name", "")).startswith(WORKER_PROCESS_PREFIX):
            data = {k: v for k, v in data.items() if k not in ("init_main_from_path", "init_main_from_name")}
        prepare(data)

    lean_prepare.rmqtui_lean = True  # type: ignore[attr-defined]
    spawn.prepare = lean_prepare
