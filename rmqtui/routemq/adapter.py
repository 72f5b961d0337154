"""Inside an rmqtui worker: run one RouteMQ route exactly as RouteMQ's own worker would.

The binding module that ``rmqtui init --from-routemq`` writes next to the project
(``rmqtui_routemq.py``) holds one :class:`RouteMQApp` and one handler per route::

    app = RouteMQApp(__file__)
    devices_device_id_telemetry = app.handler("devices/{device_id}/telemetry")

Creating the app loads ``.env`` (never over the real environment), puts the
project on ``sys.path`` and imports the routers, once per worker process, before
the worker connects; a broken router fails the worker with file and line.  Each
message then goes through a RouteMQ ``Router`` holding only this route, so
RouteMQ's own middleware chain, parameter injection (``handler(**params,
payload=..., client=...)``), payload decoding and tracing run unchanged.  What
RouteMQ's main process sets up when the app enables it (database models,
Redis, TSDB, job registry) is set up once per worker, on the worker's event
loop, before its first message.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from .project import DEFAULT_ROUTERS, LoadedRoute, ProjectError, load_routes, prepare_process

log = logging.getLogger("rmqtui.routemq")


class WorkerClient:
    """What RouteMQ handlers and middleware get as ``client``: paho's publishing surface.

    ``publish(topic, payload=None, qos=0, retain=False)`` goes through the worker's
    own MQTT connection via the message's ``msg.publish``, which is safe from
    handlers (they never own the network thread).  ``_client_id`` is there
    because RouteMQ's example middleware logs it.
    """

    __slots__ = ("_msg", "_client_id")

    def __init__(self, msg: Any) -> None:
        self._msg = msg
        self._client_id = str(getattr(msg, "client_id", "") or f"rmqtui-{os.getpid()}").encode()

    def publish(self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False,
                properties: Any = None) -> Any:
        """Publish like ``paho.mqtt.client.Client.publish`` (str, bytes, numbers or ``None``)."""
        publish = getattr(self._msg, "publish", None)
        if publish is None:
            raise NotImplementedError(
                "this rmqtui's Message has no publish(): a RouteMQ handler's client.publish() needs "
                "rmqtui with handler publishing (msg.publish)")
        if properties is not None:
            raise NotImplementedError("client.publish(properties=...) is not available under rmqtui: "
                                      "publish without MQTT v5 properties")
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            payload = str(payload)  # paho sends numbers as their text
        return publish(topic, payload, qos=qos, retain=retain)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"client.{name} is not available to a RouteMQ handler under rmqtui: its client "
                             "only publishes (subscriptions come from the routes, the connection is the "
                             "worker's)")

    def __repr__(self) -> str:
        return f"WorkerClient({self._client_id.decode()!r})"


class _WithProperties:
    """The one attribute of a paho message that RouteMQ's ``extract_trace_context`` reads."""

    __slots__ = ("properties",)

    def __init__(self, properties: Any) -> None:
        self.properties = properties


class RouteMQApp:
    """One RouteMQ project loaded in this worker process (create it once, in the binding module)."""

    def __init__(self, binding_file: str | Path, routers: str = DEFAULT_ROUTERS) -> None:
        self.directory = Path(binding_file).resolve().parent
        self.routers = routers
        prepare_process(self.directory)  # before RouteMQ is imported: it reads env at import time
        self.routes: list[LoadedRoute] = load_routes(self.directory, routers)
        self.group = os.environ.get("MQTT_GROUP_NAME", "mqtt_framework_group")
        self._started = False
        self._start_lock: asyncio.Lock | None = None

    def handler(self, topic: str):
        """The rmqtui handler (``async def handler(msg)``) of the RouteMQ route registered as ``topic``.

        With the same topic registered twice, the first one wins, as in RouteMQ's dispatch.
        """
        from routemq import observability
        from routemq.mqtt_utils import extract_trace_context, parse_mqtt_payload
        from routemq.router import Router

        found = next((r for r in self.routes if r.route.topic == topic), None)
        if found is None:
            known = ", ".join(repr(r.route.topic) for r in self.routes) or "none"
            raise ProjectError(str(self.directory / "rmqtui_routemq.py"),
                               f"no RouteMQ route {topic!r} in {self.routers} (routes: {known})",
                               "regenerate routemq.toml and rmqtui_routemq.py after changing the routers: "
                               "remove both, then run `rmqtui init --from-routemq DIR`")
        router = Router()
        router.routes.append(found.route)  # RouteMQ's own dispatch, restricted to this route
        app = self

        async def handle(msg: Any) -> None:
            if not app._started:
                await app.start()
            context = {"source": "mqtt", "process": "worker", "worker_id": os.getpid(),
                       "mqtt_topic": msg.topic, "actual_topic": msg.topic, "group_name": app.group,
                       "rmqtui.route": getattr(msg, "route", "")}
            # W3C trace context from MQTT v5 user properties, as RouteMQ's worker reads it
            properties = getattr(msg, "properties", None) or getattr(msg, "_properties", None)
            if properties is not None:
                context.update(extract_trace_context(_WithProperties(properties)))
            token = observability.set_context(context)
            try:
                with observability.start_span("mqtt.receive", {
                        "messaging.system": "mqtt", "messaging.operation.type": "receive",
                        "messaging.destination": msg.topic, "routemq.process.role": "worker",
                        "routemq.worker.id": os.getpid()}, kind="consumer"):
                    observability.lifecycle("mqtt.message.received", {"process": "worker"})
                    await router.dispatch(msg.topic, parse_mqtt_payload(msg.payload), WorkerClient(msg))
                    observability.lifecycle("mqtt.message.succeeded", {"process": "worker"})
            except Exception as exc:
                observability.lifecycle("mqtt.message.failed", {"process": "worker",
                                                                 "error": type(exc).__name__})
                raise
            finally:
                observability.reset_context(token)

        handle.__name__ = handle.__qualname__ = f"routemq[{topic}]"
        handle.route = found  # type: ignore[attr-defined]
        return handle

    async def start(self) -> None:
        """Per-worker set-up of what RouteMQ's main process initialises, when the app enables it."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            await _start_services(self.directory)
            self._started = True


async def _start_services(directory: Path) -> None:
    """Database models, Redis, TSDB and the job registry, read from the same settings RouteMQ reads."""
    from routemq.job_registry import JobRegistry
    from routemq.settings import load_database_connection_settings, load_database_pool_settings

    JobRegistry(os.getenv("ROUTEMQ_JOB_DIRECTORY", "app.jobs")).discover_and_register_jobs()
    database = load_database_connection_settings()
    if database.enabled:
        from routemq.model import Model

        pool = load_database_pool_settings()
        Model.configure(database.url, pool_size=pool.pool_size, max_overflow=pool.max_overflow,
                        pool_timeout=pool.pool_timeout, pool_recycle=pool.pool_recycle,
                        pool_pre_ping=pool.pool_pre_ping, pool_use_lifo=pool.pool_use_lifo,
                        pool_class=pool.pool_class)
        if database.auto_create_tables:
            await Model.create_tables()
    if os.getenv("ENABLE_REDIS", "false").lower() == "true":
        from routemq.redis_manager import redis_manager

        if not await redis_manager.initialize():
            log.warning("Redis initialisation failed (ENABLE_REDIS=true); handlers using it will fail")
    if os.getenv("ENABLE_TSDB", "false").lower() == "true":
        from routemq.tsdb.tsdb_manager import tsdb_manager

        if not await tsdb_manager.initialize():
            log.warning("TSDB initialisation failed (ENABLE_TSDB=true)")
    log.debug("RouteMQ services ready for %s", directory)
