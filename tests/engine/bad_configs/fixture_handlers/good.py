"""A valid handler module."""


def ok(msg):
    """Accept every message."""
