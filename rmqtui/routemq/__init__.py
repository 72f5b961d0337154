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
