"""Issue 9: crash loops, a stop, a supervisor SIGKILL and scale-downs around dead or stuck workers lose
nothing the broker acknowledged, with the embedded broker and with an external Mosquitto.

Short variants; ``tests/chaos/run_long.py`` runs the long ones.
"""

from __future__ import annotations

import pytest

from .delivery import ExternalBroker, kill_storm, scale_down_around, sigkill_supervisor, stop_and_restart
from .harness import table

pytestmark = pytest.mark.timeout(180)

@pytest.fixture(params=["embedded", "external"])
def broker(request, chaos):
    if request.param == "embedded":
        yield None
        return
    ext = ExternalBroker(chaos.root)
    try:
        yield ext
    finally:
        chaos.stop_all()
        ext.stop()


def _no_loss(result, figures, title):
    figures(table(result.rows, title))
    for row in result.rows:
        assert row.lost == 0, f"{row.fault}: lost {row.lost} acknowledged messages, e.g. {row.lost_seqs[:10]}"
    assert sum(r.published for r in result.rows) > 0, "nothing was published"


def test_kill_storm_never_crash_loops_and_loses_nothing(chaos, broker, figures):
    result = kill_storm(chaos, seconds=10, workers=4, rate=300, external=broker)
    looped = result.crash_looping
    assert not looped, f"workers killed from outside were taken for a crash loop: {looped}"
    _no_loss(result, figures, f"kill storm, {'external' if broker else 'embedded'} broker")


def _embedded_restart_caveat(broker, request) -> None:
    if broker is None:
        # Mosquitto 2.0.11 restores a session's queued messages from its persistence file but not its $share
        # subscription.  rmqtui subscribes the stored sessions again right after the broker is ready, before
        # the workers start (restore_subscriptions); a publisher that reconnects within those milliseconds
        # can still see its messages dropped, so a loss here is possible, if rare: expected to pass (XPASS)
        request.applymarker(pytest.mark.xfail(strict=False, reason="Mosquitto 2.0.11 does not persist $share "
                                                                   "subscriptions; restored within ms of start"))


def test_stop_under_load_then_restart_loses_nothing(chaos, broker, figures, request):
    _embedded_restart_caveat(broker, request)
    result = stop_and_restart(chaos, rate=300, workers=3, external=broker)
    _no_loss(result, figures, f"stop under load + restart, {'external' if broker else 'embedded'} broker")


def test_sigkill_of_the_supervisor_under_load_then_restart_loses_nothing(chaos, broker, figures, request):
    _embedded_restart_caveat(broker, request)
    result = sigkill_supervisor(chaos, rate=300, workers=3, external=broker)
    _no_loss(result, figures, f"supervisor SIGKILL + restart, {'external' if broker else 'embedded'} broker")


@pytest.mark.parametrize("how", ["dead", "killed-in-drain", "stopped", "drain-timeout"])
def test_scale_down_around_a_dead_or_stuck_worker_loses_nothing(chaos, figures, how):
    result = scale_down_around(chaos, how, rate=300, workers=3)
    _no_loss(result, figures, f"scale-down, victim {how}")
