from routemq.router import Router

from app.controllers.commands import run_command

router = Router()
router.on("commands/{device_id}/{command}", run_command, qos=1, shared=True, worker_count=1)
