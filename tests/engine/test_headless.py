"""The headless status block: readable on an 80-column ssh session."""

from rmqtui.demo import FixedFleet
from rmqtui.headless import format_status, snapshot_json


def test_status_block_fits_80_columns_and_names_every_route():
    snap = FixedFleet("crashloop").snapshot()
    text = format_status(snap)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    for route in snap.routes:
        assert any(line.strip().startswith(route.name) for line in lines)
    assert any(line.strip().startswith("total") and f"{snap.running}/{snap.desired}" in line for line in lines)
    assert any("crashloop" in line for line in lines), "an unhealthy worker gets its own line"


def test_json_line_is_one_object_with_the_totals():
    import json

    snap = FixedFleet("normal").snapshot()
    data = json.loads(snapshot_json(snap))
    assert data["handled"] == snap.handled and len(data["workers"]) == len(snap.workers)
    assert data["broker"]["state"] == snap.broker.state.value
