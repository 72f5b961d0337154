"""Write the README screenshot of a read-only attached session: ``python screenshots/attached.py``.

A FixedFleet is served on a real control socket (in a throw-away runtime directory) and
the attach TUI connects to it read-only, then presses ``+`` to show the refusal.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rmqtui.attach import AttachedApp  # noqa: E402
from rmqtui.demo import FixedFleet  # noqa: E402
from rmqtui.engine import runtime  # noqa: E402
from rmqtui.engine.control import ControlServer, RemoteFleet  # noqa: E402

NAME = "attached-read-only-80x24.svg"


async def shoot(config: Path) -> Path:
    server = ControlServer(FixedFleet("normal"), config, audit_dir=runtime.fleet_state_dir(config))
    server.start()
    remote = RemoteFleet(config, read_only=True)
    try:
        app = AttachedApp(remote)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await pilot.pause()
            app.clear_notifications()  # the "attached" toast would cover the refusal
            await pilot.press("down", "plus")
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            app.save_screenshot(filename=NAME, path=str(HERE))
    finally:
        remote.close()
        server.close()
    return HERE / NAME


def main() -> int:
    os.environ["TZ"] = "UTC"
    time.tzset()
    base = Path(tempfile.mkdtemp(prefix="rqs"))
    os.environ["RUNTIME_DIRECTORY"], os.environ["STATE_DIRECTORY"] = str(base / "run"), str(base / "state")
    try:
        print(asyncio.run(shoot(base / "routemq.toml")).relative_to(HERE.parent))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
