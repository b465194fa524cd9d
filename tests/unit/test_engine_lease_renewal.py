"""
The lease is renewed while the leader works: a standby that takes over and
catches up on a transition whose publish takes longer than the lease keeps its
lease (no other master can take it meanwhile), and a leader deposed in the
middle of its catch-up publishes nothing more.

Unlike tests/unit/test_engine_leader.py, the engines' lease threads run on real
time with a short tick (0.2 s, lease 0.3 s); the clock is the real one moved to
just after the 08:00 transition. SQLite only: MariaDB's DATETIME columns keep
whole seconds, too coarse for sub-second leases.
"""

import datetime
import threading
import time

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING

from salt_kiosk.db import schema
from tests.unit.test_engine_leader import master
from tests.unit.test_scheduler import AT, LEADER_TAG, Publisher, load_fleet, runs, set_last_tick

UTC = datetime.timezone.utc
TICK = 0.2
LEASE = 0.3
PATIENCE = 2.0  # seconds any wait below may take at most


class ShiftedClock:
    """The real clock, shifted so that it reads ``start`` now."""

    def __init__(self, start):
        self.offset = start - datetime.datetime.now(UTC)

    def __call__(self):
        return datetime.datetime.now(UTC) + self.offset


class BlockingPublisher(Publisher):
    """Its first publish waits (like relays slow to answer) until ``release`` is set."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, opts, jobs, timeout):
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(PATIENCE + 1)
        return super().__call__(opts, jobs, timeout)


def wait_for(condition, what):
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def leader_events(fired):
    return [(node, data["role"]) for node, tag, data in list(fired) if tag == LEADER_TAG]


def lease_row(kstore):
    with kstore.connect() as conn:
        return conn.execute(sa.select(schema.engine_leases).where(schema.engine_leases.c.key == "kiosk")).one()


def set_lease(kstore, clock, holder, expires_in):
    """``holder`` holds the lease, expiring ``expires_in`` seconds from ``clock``."""
    now = clock().replace(tzinfo=None)
    leases = schema.engine_leases
    values = {"holder": holder, "renewed_at": now, "expires_at": now + datetime.timedelta(seconds=expires_in)}
    with kstore.begin() as conn:
        if not conn.execute(leases.update().where(leases.c.key == "kiosk").values(**values)).rowcount:
            conn.execute(leases.insert().values(key="kiosk", acquired_at=now, **values))


def engine_on(opts, node, clock, publisher, fired, grace=600):
    return master(opts, node, clock, publisher, fired, grace=grace, tick=TICK, lease=LEASE)


@pytest.fixture
def loaded(kstore, tmp_path):
    return load_fleet(kstore, tmp_path)


@pytest.fixture
def standby(opts, loaded):
    """
    A function setting the scene at ``now`` (a shifted real clock): mom-a led
    until 07:59:30 and holds the lease; mom-b stands by (its lease thread
    running), its publisher blocking. Then mom-a's lease expires; the function
    returns once mom-b, having taken over, is publishing the 08:00 wake: mom-b,
    its publisher, clock and fired events. Every mom-b is stopped afterwards.
    """
    made = []

    def make(now, grace=600):
        clock = ShiftedClock(now)
        set_last_tick(loaded, AT - datetime.timedelta(seconds=30))
        set_lease(loaded, clock, "mom-a", expires_in=3600)
        pub, fired = BlockingPublisher(), []
        second = engine_on(opts, "mom-b", clock, pub, fired, grace=grace)
        made.append((second, pub))
        second.start()
        assert not second.leading
        # mom-a dies: its lease expires; mom-b's lease thread takes over and catches up.
        set_lease(loaded, clock, "mom-a", expires_in=0)
        wait_for(pub.entered.is_set, "mom-b to take over and publish the 08:00 wake")
        return second, pub, clock, fired

    yield make
    for engine, pub in made:
        pub.release.set()
        engine.stop()


def test_the_lease_is_renewed_while_the_new_leader_catches_up(opts, loaded, standby):
    second, pub, clock, fired = standby(AT + datetime.timedelta(seconds=5))
    # The wake is being published (the relays answer slowly): the lease is mom-b's.
    before = lease_row(loaded)
    assert before.holder == "mom-b"
    time.sleep(2 * LEASE)
    during = lease_row(loaded)
    assert during.holder == "mom-b"
    assert during.renewed_at > before.renewed_at
    assert during.expires_at > clock().replace(tzinfo=None)
    # Another master (the old leader restarted) cannot take it.
    third = engine_on(opts, "mom-c", clock, Publisher(), [])
    third.start()
    try:
        assert not third.leading
        assert third.lease_step() is False
    finally:
        third.stop()
    assert lease_row(loaded).holder == "mom-b"

    pub.release.set()
    wait_for(lambda: leader_events(fired), "mom-b to announce that it leads")
    assert leader_events(fired) == [("mom-b", "leader")]
    assert second.leading and second.scheduler.state == STATE_RUNNING
    assert lease_row(loaded).holder == "mom-b"
    assert len(pub.calls) == 1 and pub.calls[0]["east"]["fun"] == "kiosk.wake"
    assert runs(loaded) == [("kiosk-e1", "on", "done")]


def test_a_leader_deposed_while_catching_up_publishes_nothing_more(opts, loaded, standby):
    # 09:00:05: both the 08:00 wake and the 09:00 shutdown are due (within a two-hour grace).
    second, pub, clock, fired = standby(AT + datetime.timedelta(hours=1, seconds=5), grace=7200)
    # While the wake is being published, mom-b loses its lease (mom-c holds it now).
    set_lease(loaded, clock, "mom-c", expires_in=3600)
    wait_for(lambda: leader_events(fired), "mom-b to step down")
    pub.release.set()
    wait_for(lambda: runs(loaded) == [("kiosk-e1", "on", "done")], "the wake in hand to be settled")
    lead = getattr(second, "_lead_thread", None)
    if lead is not None:
        lead.join(PATIENCE)
    time.sleep(2 * TICK)
    # The wake in hand was sent (its claim was mom-b's); the shutdown is left to mom-c.
    assert len(pub.calls) == 1 and pub.calls[0]["east"]["fun"] == "kiosk.wake"
    assert runs(loaded) == [("kiosk-e1", "on", "done")]
    assert not second.leading and second.scheduler.state == STATE_PAUSED
    assert lease_row(loaded).holder == "mom-c"
    assert leader_events(fired) == [("mom-b", "standby")]
