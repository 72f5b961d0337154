"""Running an existing RouteMQ project under rmqtui.

RouteMQ defines routes in Python (``router.on(...)`` in ``app/routers/*.py``);
rmqtui runs routes from ``routemq.toml``.  This package bridges the two without
the supervisor ever importing the project:

* :mod:`.dotenv`: the project's ``.env`` as overrides (never over the real environment);
* :mod:`.project`: imports the routers strictly (errors with file, line and fix);
* :mod:`.discover`: does that in a throw-away subprocess and returns plain route data;
* :mod:`.checks`: the traps RouteMQ routes fall into (invalid filters, unescaped patterns...);
* :mod:`.generate`: writes the equivalent ``routemq.toml`` plus a small binding module;
* :mod:`.adapter`: inside each worker, dispatches every message through RouteMQ's own
  router and middleware chain for that route.
"""

from __future__ import annotations

import importlib.util
from typing import Any

#: Heavy modules RouteMQ imports that read no project settings, so a fork server may import them
#: before any ``.env`` is loaded: SQLAlchemy is half of RouteMQ's import time and memory.
SAFE_PRELOAD = ("sqlalchemy", "sqlalchemy.ext.asyncio", "sqlalchemy.orm")


def forkserver_preload(config: Any) -> list[str]:
    """Modules to add to the fork server's preload when ``config`` runs RouteMQ routes, else ``[]``.

    RouteMQ itself must not be preloaded: some of its modules read the environment at
    import time, before a worker has loaded the project's ``.env``.
    """
    from .generate import BINDING_MODULE

    if not any(route.handler.startswith(f"{BINDING_MODULE}:") for route in config.routes):
        return []
    if importlib.util.find_spec("sqlalchemy") is None:
        return []
    return list(SAFE_PRELOAD)
