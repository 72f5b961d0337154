"""The optional services around a running fleet: ``$SYS`` reader, autoscaler, ``/metrics``.

One call starts what routemq.toml asks for and one call stops it, so a front end
(headless, TUI) wires them with two lines and the config package only has to
hand over the raw keys (``[metrics] listen``; per route ``autoscale``, ``min``, ``max``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .api import CommandResult
from .autoscale import AutoscaleController, AutoscaleSettings, parse_autoscale
from .broker_sys import BrokerSysReader, broker_settings
from .metrics import FleetCollector, MetricsServer, MetricsSettings, MetricsSettingsError, parse_metrics_settings


@dataclass(frozen=True, slots=True)
class OpsSettings:
    """What routemq.toml asks for beyond the fleet itself."""

    metrics: MetricsSettings = MetricsSettings()
    autoscale: dict[str, AutoscaleSettings] = field(default_factory=dict)  # route name -> settings

    @property
    def autoscaled(self) -> bool:
        """True when any route is in ``suggest`` or ``on`` mode."""
        return any(s.mode != "off" for s in self.autoscale.values())


def parse_ops_settings(doc: Mapping) -> OpsSettings:
    """Read ``[metrics]`` and the routes' autoscale keys from the raw TOML document (ValueError with the fix)."""
    try:
        metrics = parse_metrics_settings(doc)
    except MetricsSettingsError as exc:
        raise ValueError(str(exc)) from None
    autoscale = {}
    for i, route in enumerate(doc.get("routes", []) or []):
        if isinstance(route, Mapping) and isinstance(route.get("name"), str):
            autoscale[route["name"]] = parse_autoscale(route, where=f"[[routes]] {route['name']!r}")
    return OpsSettings(metrics, autoscale)


class OpsServices:
    """Starts and stops the services ``settings`` asks for, around one fleet (any ``FleetControl``)."""

    def __init__(self, fleet, broker_config, settings: OpsSettings) -> None:
        self.fleet = fleet
        self.broker_config = broker_config
        self.settings = settings
        self.sys_reader: BrokerSysReader | None = None
        self.autoscaler: AutoscaleController | None = None
        self.metrics: MetricsServer | None = None
        self.presence = None  # hosts.Presence, on an external broker (several hosts may share its group)
        self.auto_adopt = None  # hosts.AutoAdopt, with [fleet] adopt_after

    def _host(self) -> tuple[str, str]:
        from .config import client_prefix, host_id

        return host_id(self.fleet.config), client_prefix(self.fleet.config)

    def start(self) -> "OpsServices":
        """Presence on an external broker; the ``$SYS`` reader when anything needs it, then the autoscaler and
        ``/metrics``."""
        s = self.settings
        if not self.broker_config.embedded and hasattr(self.fleet, "broker_settings"):
            from .hosts import Presence

            host, prefix = self._host()
            fleet = self.fleet
            self.presence = Presence(fleet.broker_settings(), fleet.config.fleet.group, host, f"{prefix}-presence",
                                     lambda: [{"client_id": w.client_id, "route": w.route, "slot": w.slot}
                                              for w in fleet.snapshot().workers]).start()
            if fleet.config.fleet.adopt_after > 0:
                from .hosts import AutoAdopt

                self.auto_adopt = AutoAdopt(fleet.broker_settings(), fleet.config.fleet.group, host,
                                            f"{prefix}-watch", fleet.config.fleet.adopt_after,
                                            lambda dead: self._adopt_logged(dead)).start()
        if not (s.autoscaled or s.metrics.port):
            return self
        broker = self.fleet.snapshot().broker  # the embedded broker may have moved off the configured port
        self.sys_reader = BrokerSysReader(broker_settings(self.broker_config, broker.host, broker.port,
                                                          broker.unix_path))
        self.sys_reader.start()
        if s.autoscaled:
            self.autoscaler = AutoscaleController(self.fleet, s.autoscale, broker_stats=self.sys_reader.stats)
            self.autoscaler.start()
        if s.metrics.port:
            recs = self.autoscaler.recommendations if self.autoscaler else None
            self.metrics = MetricsServer(FleetCollector(self.fleet.snapshot, self.sys_reader.stats, recs),
                                         s.metrics.host, s.metrics.port)
            self.metrics.start()
        return self

    def metrics_text(self) -> str:
        """The Prometheus exposition of the fleet now (``rmqtui ctl metrics``), with or without ``[metrics]``."""
        if self.metrics is None:
            recs = self.autoscaler.recommendations if self.autoscaler else None
            stats = self.sys_reader.stats if self.sys_reader else None
            self.metrics = MetricsServer(FleetCollector(self.fleet.snapshot, stats, recs))  # not served over HTTP
        return self.metrics.render().decode()

    def adopt(self, host: str, force: bool = False) -> CommandResult:
        """Take over a dead host's sessions (see :mod:`rmqtui.engine.hosts`)."""
        from .hosts import adopt
        from .supervisor.specs import adoption_spec

        if self.broker_config.embedded or not hasattr(self.fleet, "broker_settings"):
            return CommandResult.refused("adopt needs an external broker shared by several hosts")
        me, _ = self._host()
        fleet = self.fleet
        ok, message = adopt(fleet.broker_settings(), fleet.config.fleet.group, host, me,
                            lambda record: adoption_spec(fleet, record), force=force)
        return CommandResult(ok, message)

    def _adopt_logged(self, host: str) -> tuple[bool, str]:
        result = self.adopt(host)
        note = getattr(self.fleet, "_note", None)  # the fleet's event log: every front end shows it
        if callable(note):
            note("WARNING" if result.ok else "ERROR", "fleet", f"adopt_after: {result.message}")
        return result.ok, result.message

    def unpin(self, route: str) -> CommandResult:
        """Let the autoscaler act on ``route`` again after a manual change pinned it."""
        if self.autoscaler is None or not self.autoscaler.unpin(route):
            return CommandResult.refused(f"route {route!r} is not autoscaled (autoscale = \"on\" or \"suggest\")")
        return CommandResult.accepted(f"{route}: unpinned; the autoscaler decides its count again")

    def stop(self) -> None:
        """Stop everything started, newest first."""
        for service in (self.auto_adopt, self.metrics, self.autoscaler, self.sys_reader, self.presence):
            if service is not None:
                service.stop()
        self.metrics = self.autoscaler = self.sys_reader = self.presence = self.auto_adopt = None
