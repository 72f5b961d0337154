"""Write the README screenshots: ``python screenshots/make.py``.

Each view is saved at 160x48 (``<name>.svg``) and at 80x24 (``<name>-80x24.svg``).  The main,
help and crash-loop views run on the demo fleet; the detail and sorted views run on the
scripted fleet of the TUI tests, fed five minutes of history so the charts have a shape.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rmqtui.demo import FixedFleet  # noqa: E402
from rmqtui.ui.app import FleetApp  # noqa: E402
from tests.tui_fleet import ScriptedFleet  # noqa: E402

SORT_BY_CPU = ("a", *["greater_than_sign"] * 6)
VIEWS = {
    "main": ("normal", ("a", "down", "down")),
    "help": ("normal", ("question_mark",)),
    "crashloop": ("crashloop", ("shift+tab", "down", "enter", "down")),
    "detail": ("scripted", ("enter",)),
    "sorted": ("scripted", SORT_BY_CPU),
}
SIZES = {"": (160, 48), "-80x24": (80, 24)}


async def shoot(name: str, scenario: str, keys: tuple[str, ...], suffix: str, size: tuple[int, int]) -> Path:
    scripted = ScriptedFleet() if scenario == "scripted" else None
    app = FleetApp(scripted, refresh=3600) if scripted else FleetApp(FixedFleet(scenario))
    async with app.run_test(size=size, notifications=True) as pilot:
        if scripted is not None:
            for t in range(0, 301, 2):
                app.history.record(scripted.snapshot_at(float(t)))
            scripted.log("ERROR", "orders/0", "handler raised ValueError: order 4411 has no customer")
            app.refresh_fleet()
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        path = HERE / f"{name}{suffix}.svg"
        app.save_screenshot(filename=path.name, path=str(HERE))
    return path


def main() -> int:
    os.environ["TZ"] = "UTC"  # the fixed log times read the same everywhere
    time.tzset()
    for name, (scenario, keys) in VIEWS.items():
        for suffix, size in SIZES.items():
            print(asyncio.run(shoot(name, scenario, keys, suffix, size)).relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
