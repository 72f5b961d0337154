from routemq.middleware import Middleware


class StampMiddleware(Middleware):
    """Adds its name to a dict payload, so the handler can tell the middleware ran first."""

    def __init__(self, name):
        self.name = name

    async def handle(self, context, next_handler):
        payload = context["payload"]
        if isinstance(payload, dict):
            context["payload"] = {**payload, "stamps": [*payload.get("stamps", []), self.name]}
        return await next_handler(context)
