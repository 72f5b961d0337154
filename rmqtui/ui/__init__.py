"""The Textual front end: renders :class:`~rmqtui.engine.snapshot.FleetSnapshot` objects and
drives the fleet only through :class:`~rmqtui.engine.api.FleetControl`."""
