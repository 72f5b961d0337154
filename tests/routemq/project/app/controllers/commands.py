import json

from routemq.observability import get_context_attributes

from app.evidence import record


async def run_command(device_id, command, payload, client):
    """Acknowledges a command on replies/<device_id>, as RouteMQ handlers reply: client.publish."""
    record(route="command", device_id=device_id, command=command, payload=payload,
           trace_id=get_context_attributes().get("trace_id"))
    client.publish(f"replies/{device_id}", json.dumps({"command": command, "ok": True, "payload": payload}), qos=1)
