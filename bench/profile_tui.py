"""Profile the TUI (FleetApp under app.run_test) over a real Fleet of idle workers, with py-spy.

    .venv/bin/python bench/profile_tui.py [--workers 100] [--seconds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    from benchlib import PY, Bench, wait_until
    from profile_worker import summarize

    from rmqtui.engine.snapshot import WorkerState
    from rmqtui.ui.app import FleetApp

    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=12)
    ap.add_argument("--out", default="/tmp/rmqtui-tui-profile.txt")
    a = ap.parse_args()
    b = Bench(argparse.Namespace(quick=True))
    b.start()
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    try:
        cfg = b.project([{"name": "idle", "topic": "bench/idle", "handler": "bh.plain:handle", "shared": True,
                          "workers": a.workers, "qos": 1}], protocol="v5")
        fleet = b.start_fleet(cfg)
        wait_until(lambda: sum(1 for w in fleet.snapshot().workers if w.state is WorkerState.SUBSCRIBED)
                   == a.workers, 120, 0.2, "workers")

        async def drive():
            app = FleetApp(fleet)
            async with app.run_test(size=(160, 50)) as pilot:
                await pilot.pause(1.0)
                rec = subprocess.Popen([spy, "record", "--pid", str(os.getpid()), "--duration", str(a.seconds),
                                        "--rate", "200", "--format", "raw", "--output", a.out, "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while rec.poll() is None:
                    await asyncio.sleep(0.2)

        asyncio.run(asyncio.wait_for(drive(), a.seconds + 60))
    finally:
        b.close()
    summarize(a.out, top=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
