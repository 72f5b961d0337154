from routemq.router import Router

from app.controllers.devices import DeviceController
from app.middleware.stamp import StampMiddleware

router = Router()

with router.group(prefix="devices", middleware=[StampMiddleware("devices-group")]) as devices:
    devices.on("{device_id}/telemetry", DeviceController.telemetry, qos=1, shared=True, worker_count=3)
    devices.on("{device_id}/status", DeviceController.status, qos=1)
