"""
The schedule engine when MariaDB is really killed (SIGKILL) and started again
on the same data directory: a private server (tests/mariadb_server.py), a real
:class:`~salt_kiosk.power.engine.Engine` leading over it, the publisher faked
(tests/unit/test_scheduler.py) and the engine's clock moved by hand.

The fault-injected versions of these cases, and the master killed in the
middle of a transition, are in tests/unit/test_engine_outage.py.
"""

import datetime
import logging

import pytest

from salt_kiosk.db import store
from salt_kiosk.power import actions
from salt_kiosk.power import engine as scheduler
from tests.mariadb_server import PrivateMariaDB
from tests.unit.conftest import CAMPUSES
from tests.unit.test_engine_leader import Clock, master
from tests.unit.test_scheduler import AT, Publisher, load_fleet, runs

MOMENT = datetime.timedelta(seconds=1)


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    server = PrivateMariaDB(str(tmp_path_factory.mktemp("mariadb")))
    server.install()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fleet_db(mariadb, tmp_path):
    """The master of masters' options over a fresh ``kiosk_outage`` database holding the test fleet."""
    if mariadb.proc is None or mariadb.proc.poll() is not None:
        mariadb.start()  # a test that failed with the server down
    mariadb.sql("DROP DATABASE IF EXISTS kiosk_outage")
    mariadb.sql("CREATE DATABASE kiosk_outage CHARACTER SET utf8mb4")
    opts = {"cachedir": str(tmp_path), "order_masters": True, "kiosk": {"db": mariadb.url, "campuses": CAMPUSES}}
    yield opts, load_fleet(store.open_store(opts), tmp_path)
    store.dispose_all()


def kill(server):
    """SIGKILL: no shutdown, no flush beyond what InnoDB already made durable."""
    server.proc.kill()
    server.proc.wait(timeout=30)


def tracebacks(caplog):
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def warnings_with(caplog, text):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def test_a_transition_due_while_mariadb_is_killed_runs_once_after_it_restarts(mariadb, fleet_db, caplog):
    opts, kstore = fleet_db
    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = Publisher(), []
    engine = master(opts, "mom-a", clock, pub, fired)
    engine.start()
    caplog.set_level(logging.INFO)
    try:
        assert engine.leading
        kill(mariadb)
        clock.now = AT + 5 * MOMENT
        # APScheduler runs the 08:00 job: the database is gone. Nothing raises.
        assert scheduler.run_transition(engine.key, AT.isoformat(), "on", "morning", ["kiosk-e1"]) is None
        for _ in range(8):
            clock.advance(15)
            assert engine.tick() is False
            engine.lease_step()
        assert not engine.leading  # its lease expired in the outage: it stepped down
        assert engine.scheduler._thread.is_alive() and engine._lease_thread.is_alive()
        assert pub.calls == []

        mariadb.start()  # the same data directory
        clock.advance(15)  # 08:02:05: within grace
        assert engine.lease_step() is True
        assert len(pub.calls) == 1 and pub.calls[0]["east"]["fun"] == "kiosk.wake"
        assert runs(kstore) == [("kiosk-e1", "on", "done")]
        clock.advance(15)
        assert engine.tick() is True and engine.lease_step() is True
        assert len(pub.calls) == 1
    finally:
        engine.stop()
    assert len(warnings_with(caplog, "the kiosk database does not answer")) == 1
    assert len(warnings_with(caplog, "the kiosk database answers again")) == 1
    assert tracebacks(caplog) == []


def test_mariadb_killed_during_the_transitions_publish_it_is_recorded_once_after_it_restarts(mariadb, fleet_db, caplog):
    opts, kstore = fleet_db

    class KillingPublisher(Publisher):
        def __call__(self, opts, jobs, timeout):
            out = super().__call__(opts, jobs, timeout)
            kill(mariadb)  # the packets went out; the database dies before they are recorded
            return out

    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = KillingPublisher(), []
    engine = master(opts, "mom-a", clock, pub, fired, lease=600)
    engine.start()
    caplog.set_level(logging.INFO)
    try:
        clock.now = AT + 5 * MOMENT
        assert scheduler.run_transition(engine.key, AT.isoformat(), "on", "morning", ["kiosk-e1"]) is None
        assert len(pub.calls) == 1
        clock.advance(15)
        assert engine.tick() is False
        assert engine.lease_step() is True  # a lease of 600 s outlasts this outage

        mariadb.start()
        assert runs(kstore) == [("kiosk-e1", "on", "sending")]
        clock.advance(15)
        assert engine.tick() is True
        assert len(pub.calls) == 1  # not sent again
        assert runs(kstore) == [("kiosk-e1", "on", "done")]
        events = [e for e in actions.list_events(kstore) if e["source"] == "schedule"]
        assert len(events) == 1 and events[0]["kiosks"]["kiosk-e1"]["ok"] is True
        assert [data["event"] for _node, tag, data in fired if tag == "kiosk/power/wake"] == [events[0]["id"]]
    finally:
        engine.stop()
    assert len(warnings_with(caplog, "the kiosk database does not answer")) == 1
    assert len(warnings_with(caplog, "the kiosk database answers again")) == 1
    assert tracebacks(caplog) == []
