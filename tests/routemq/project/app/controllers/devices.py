import os

from routemq.controller import Controller

from app.evidence import record


class DeviceController(Controller):
    @staticmethod
    async def telemetry(device_id, payload, client):
        record(route="telemetry", device_id=device_id, payload=payload, client=type(client).__name__,
               greeting=os.environ.get("GREETING"))

    @staticmethod
    async def status(device_id, payload, client):
        record(route="status", device_id=device_id, payload=payload, client=type(client).__name__,
               greeting=os.environ.get("GREETING"))
