"""rmqtui: a supervisor and live TUI for MQTT shared-subscription worker fleets."""

__version__ = "0.1.0"
