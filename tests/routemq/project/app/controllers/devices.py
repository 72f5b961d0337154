import os

from routemq.controller import Controller
from routemq.model import Model

from app.evidence import record


class DeviceController(Controller):
    @staticmethod
    async def telemetry(device_id, payload, client):
        record(route="telemetry", device_id=device_id, payload=payload, client=type(client).__name__,
               greeting=os.environ.get("GREETING"), database=[Model._is_enabled, Model._server_port])

    @staticmethod
    async def status(device_id, payload, client):
        record(route="status", device_id=device_id, payload=payload, client=type(client).__name__,
               greeting=os.environ.get("GREETING"))
