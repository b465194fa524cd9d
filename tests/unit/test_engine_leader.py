"""
Two masters of masters run the schedule engine over one database: only the
holder of the lease executes, a standby takes over once the leader's lease has
expired and runs what fell due exactly once, and the status names the leader.

The clock is moved by hand; each engine's lease rounds are driven with
``lease_step`` (the background thread does the same every ``tick / 2``).
"""

import datetime

import pytest
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING

from salt_kiosk.errors import KioskInputError
from salt_kiosk.power import engine as scheduler
from tests.unit.test_scheduler import AT, LEADER_TAG, Publisher, load_fleet, runs

TICK = 30


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += datetime.timedelta(seconds=seconds)


def master(opts, node, clock, publisher, fired, grace=600, tick=TICK, **kwargs):
    return scheduler.Engine(
        opts,
        grace=grace,
        tick=tick,
        sweep_delays=(300, 600, 900),
        publish=publisher,
        fire=lambda data, tag: fired.append((node, tag, data)),
        clock=clock,
        node=node,
        **kwargs,
    )


@pytest.fixture
def loaded(kstore, tmp_path):
    return load_fleet(kstore, tmp_path)


@pytest.fixture
def pair(opts, loaded):
    """mom-a starts first and leads; mom-b stands by. Both are stopped afterwards."""
    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = Publisher(), []
    first = master(opts, "mom-a", clock, pub, fired)
    second = master(opts, "mom-b", clock, pub, fired)
    first.start()
    second.start()
    yield first, second, clock, pub, fired
    second.stop()
    first.stop()


def test_one_leader_the_other_stands_by(pair, loaded):
    first, second, clock, pub, fired = pair
    assert first.leading and not second.leading
    assert first.scheduler.state == STATE_RUNNING and second.scheduler.state == STATE_PAUSED
    status = scheduler.status(loaded, now=clock())
    assert status["leader"]["master"] == "mom-a" and status["leader"]["alive"] is True
    assert [(node, data["role"]) for node, tag, data in fired if tag == LEADER_TAG] == [("mom-a", "leader")]
    # A standby does not plan: replan requests (rule changes on its bus) are left to the leader.
    assert second.replan("kiosk/rules/changed") is None
    # Renewals keep the lease with the leader while it lives.
    for _ in range(4):
        clock.advance(TICK / 2)
        assert first.lease_step() is True
        assert second.lease_step() is False
    assert pub.calls == []


def test_standby_takes_over_within_two_ticks_and_runs_the_due_transition_once(pair, loaded):
    first, second, clock, pub, fired = pair
    # The leader's last tick and renewal; then it dies (no release, no more renewals).
    first.tick()
    first.lease_step()
    died_at = clock.now
    first.stop(release=False)
    polls = 0
    while not second.lease_step():
        polls += 1
        clock.advance(TICK / 2)
        assert polls < 10, "the standby never took over"
    taken_after = (clock.now - died_at).total_seconds()
    assert taken_after <= 2 * TICK
    assert second.leading
    assert scheduler.status(loaded)["leader"]["master"] == "mom-b"
    # The morning transition (08:00 Asia/Shanghai = AT) falls due after the takeover.
    clock.now = AT + datetime.timedelta(seconds=5)
    done = second.execute(AT, "on", "morning", ["kiosk-e1"])
    assert done["status"] == "done"
    # The old leader, back from the dead before noticing, cannot run it again.
    assert first.execute(AT, "on", "morning", ["kiosk-e1"])["status"] == "already handled"
    assert len(pub.calls) == 1
    assert runs(loaded) == [("kiosk-e1", "on", "done")]


def test_takeover_catches_up_on_what_fell_due_while_nobody_led(pair, loaded):
    first, second, clock, pub, _fired = pair
    first.tick()
    first.lease_step()
    first.stop(release=False)
    # The leader died a minute before 08:00 and its lease expired meanwhile.
    clock.now = AT + datetime.timedelta(seconds=40)
    assert second.lease_step() is True
    assert len(pub.calls) == 1 and pub.calls[0]["east"]["fun"] == "kiosk.wake"
    assert runs(loaded) == [("kiosk-e1", "on", "done")]
    # Taking over again (a second standby, or a restart) runs nothing twice.
    third = master(first.opts, "mom-c", clock, pub, [])
    third.start()
    second.stop(release=True)
    try:
        assert third.lease_step() is True
    finally:
        third.stop()
    assert len(pub.calls) == 1


def test_a_leader_that_finds_its_lease_taken_steps_down(pair, loaded):
    first, second, clock, _pub, fired = pair
    # mom-a hangs (no renewals) long enough for mom-b to take over, then wakes up.
    clock.advance(2 * TICK)
    assert second.lease_step() is True
    assert first.lease_step() is False
    assert not first.leading and first.scheduler.state == STATE_PAUSED
    assert ("mom-a", LEADER_TAG, {"leader": "mom-b", "master": "mom-a", "role": "standby"}) in fired
    assert scheduler.status(loaded)["leader"]["master"] == "mom-b"


def test_a_clean_stop_hands_the_lease_over_at_once(pair, loaded):
    first, second, clock, _pub, _fired = pair
    first.stop(release=True)
    assert second.lease_step() is True


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tick": 30, "lease": 10}, "kiosk_scheduler lease 10 is shorter than tick 30"),
        ({"tick": 0}, "kiosk_scheduler tick 0 is not accepted"),
        ({"tick": "soon"}, "kiosk_scheduler tick 'soon' is not accepted"),
        ({"tick": 30, "lease": float("nan")}, "kiosk_scheduler lease nan is not accepted"),
    ],
)
def test_bad_lease_settings_are_refused_at_start(opts, kwargs, message):
    with pytest.raises(KioskInputError, match=message):
        scheduler.Engine(opts, **kwargs)
