"""
The schedule engine across a database outage and across a crash in the middle
of a transition (issue 14, part 3).

The database "fails" through fault injection: every store an engine opens is
wrapped so that its connections raise ``OperationalError`` (as PyMySQL does
when MariaDB is gone) while ``down`` is set; the real MariaDB killed with
SIGKILL is tests/functional/test_engine_outage_mariadb.py. A crash of the
master is a ``Crash`` (a BaseException nothing catches) raised at the chosen
point, after which the engine object is dropped without releasing its lease
and a new one (the restarted master, or a standby) takes over. The clock is
moved by hand and the engine's rounds (``lease_step``, ``tick``, APScheduler's
``run_transition``) are driven directly.
"""

import datetime
import json
import logging
import os
import threading
import time

import pytest
import salt.utils.jid
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from salt_kiosk.db import migrations, schema, store
from salt_kiosk.errors import KioskStoreError
from salt_kiosk.power import actions
from salt_kiosk.power import engine as scheduler
from tests.unit.test_engine_leader import Clock, master
from tests.unit.test_scheduler import AT, Publisher, load_fleet, runs

MOMENT = datetime.timedelta(seconds=1)
ENGINE_LOGGERS = (scheduler.__name__, "apscheduler")


class Crash(BaseException):
    """The master process dies here (nothing in the engine catches a BaseException)."""


class FlakyEngine:
    """A store's SQLAlchemy engine whose ``connect``/``begin`` raise OperationalError while ``down``."""

    def __init__(self, engine):
        self._engine = engine
        self.down = False
        self.refused = 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def _check(self):
        if self.down:
            self.refused += 1
            raise OperationalError(
                "SELECT 1", {}, ConnectionRefusedError(2003, "Can't connect to MySQL server on '127.0.0.1' (injected)")
            )

    def begin(self):
        self._check()
        return self._engine.begin()

    def connect(self):
        self._check()
        return self._engine.connect()


@pytest.fixture
def flaky(monkeypatch):
    """Every store an engine opens from now on is flaky; the list holds their engines, in the order opened."""
    opened = []
    real_open = store.open_store

    def open_flaky(opts):
        real = real_open(opts)
        engine = FlakyEngine(real.engine)
        opened.append(engine)
        return store.Store(engine, real.campuses_config)

    monkeypatch.setattr(store, "open_store", open_flaky)
    return opened


@pytest.fixture
def loaded(kstore, tmp_path):
    return load_fleet(kstore, tmp_path)


class ReturningPublisher(Publisher):
    """
    Publishes like the daemon tree and records what the relays' ``kiosk_mysql``
    returner records: the job's load and its returns under the job's jid.
    ``crash``: ``before`` (the master dies before anything went out),
    ``collecting`` (it dies after the relays recorded the returns).
    """

    def __init__(self, kstore, crash=None):
        super().__init__()
        self.kstore = kstore
        self.crash = crash
        self.jids = []

    def __call__(self, opts, jobs, timeout):
        assert all(job.get("jid") for job in jobs.values()), jobs
        if self.crash == "before":
            self.crash = None
            raise Crash()
        out = super().__call__(opts, jobs, timeout)
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        with self.kstore.begin() as conn:
            for key, job in jobs.items():
                jid = job["jid"]
                self.jids.append(jid)
                load = {"jid": jid, "fun": job["fun"], "tgt": job["tgt"], "arg": job.get("arg", [])}
                conn.execute(
                    schema.jobs.insert().values(
                        jid=jid,
                        fun=job["fun"],
                        tgt=json.dumps(job["tgt"]),
                        load=json.dumps(load),
                        master_id="relay-e1",
                        created_at=now,
                    )
                )
                for minion, answer in out[key].items():
                    full = {"id": minion, "jid": jid, "fun": job["fun"], "return": answer["ret"], "retcode": 0}
                    conn.execute(
                        schema.returns.insert().values(
                            jid=jid,
                            minion_id=minion,
                            fun=job["fun"],
                            success=True,
                            retcode=0,
                            ret=json.dumps(full),
                            master_id="relay-e1",
                            alter_time=now,
                        )
                    )
        if self.crash == "collecting":
            self.crash = None
            raise Crash()
        return out


def run_transition(engine):
    """What APScheduler does when the 08:00 job of the ``morning`` rule falls due."""
    return scheduler.run_transition(engine.key, AT.isoformat(), "on", "morning", ["kiosk-e1"])


def tags(fired, tag):
    return [data for _node, fired_tag, data in fired if fired_tag == tag]


def power_events(kstore):
    return [e for e in actions.list_events(kstore) if e["source"] == "schedule"]


def sweep_jobs(engine):
    return sorted(job.id for job in engine.scheduler.get_jobs() if job.id.startswith(scheduler.SWEEP_PREFIX))


def messages(caplog, text, level=logging.WARNING):
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


def handled_already(outcomes):
    """True when a catch-up found every transition handled already."""
    return [o["status"] for o in outcomes] == ["already handled"]


def leader_at(opts, clock, pub, fired, **kwargs):
    """mom-a, started at ``clock`` (a minute before 08:00): it leads and has ticked."""
    engine = master(opts, "mom-a", clock, pub, fired, **kwargs)
    engine.start()
    assert engine.leading
    return engine


# -- database outage -----------------------------------------------------------


@pytest.mark.parametrize(
    "lease, back_by",
    [(900, "tick"), (None, "lease step")],
    ids=["outage-shorter-than-the-lease", "lease-expired-in-the-outage"],
)
def test_a_transition_due_during_an_outage_runs_once_when_the_database_returns_within_grace(
    opts, loaded, flaky, lease, back_by
):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = Publisher(), []
    engine = leader_at(opts, clock, pub, fired, lease=lease)
    try:
        clock.advance(30)
        assert engine.tick() is True  # the last tick before the outage: 07:59:30
        flaky[0].down = True
        clock.now = AT + 5 * MOMENT
        # The transition's job falls due: its claim fails on the database. Nothing raises.
        assert run_transition(engine) is None
        for _ in range(10):
            clock.advance(15)
            assert engine.tick() is False
            engine.lease_step()
        assert pub.calls == [] and runs(loaded) == []
        # A leader keeps leading while its lease lasts and steps down once it expired.
        assert engine.leading is (lease is not None)
        assert tags(fired, scheduler.LEADER_TAG)[-1]["role"] == ("leader" if lease else "standby")

        flaky[0].down = False
        clock.now = AT + datetime.timedelta(minutes=5)  # 300 s late: within grace (600 s)
        if back_by == "tick":
            # The tick catches up from the last recorded tick (07:59:30) BEFORE
            # recording its own (08:05): recorded first, 08:00 would be skipped.
            assert engine.tick() is True
        else:
            assert engine.lease_step() is True
        assert len(pub.calls) == 1 and pub.calls[0]["east"]["fun"] == "kiosk.wake"
        assert runs(loaded) == [("kiosk-e1", "on", "done")]
        assert (
            scheduler.status(loaded)["last_tick"]
            == (AT + datetime.timedelta(minutes=5)).replace(tzinfo=None).isoformat()
        )

        # Later rounds and the job firing again change nothing.
        clock.advance(15)
        assert engine.lease_step() is True and engine.tick() is True
        assert run_transition(engine) is None
        assert len(pub.calls) == 1 and len(power_events(loaded)) == 1
        assert tags(fired, "kiosk/power/missed") == []
    finally:
        engine.stop()


def test_a_transition_later_than_grace_when_the_database_returns_is_recorded_missed(opts, loaded, flaky):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = Publisher(), []
    engine = leader_at(opts, clock, pub, fired)
    try:
        flaky[0].down = True
        clock.now = AT + 5 * MOMENT
        assert run_transition(engine) is None
        clock.now = AT + datetime.timedelta(minutes=15)  # 900 s late: beyond grace
        assert engine.lease_step() is False  # the lease expired in the outage: stepped down
        flaky[0].down = False
        assert engine.lease_step() is True
        assert pub.calls == []
        assert runs(loaded) == [("kiosk-e1", "on", "missed")]
        missed = tags(fired, "kiosk/power/missed")
        assert len(missed) == 1 and missed[0]["kiosks"] == ["kiosk-e1"] and missed[0]["late"] == 900
        assert scheduler.status(loaded)["missed_count"] == 1
        assert engine.tick() is True and len(tags(fired, "kiosk/power/missed")) == 1
    finally:
        engine.stop()


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(opts, loaded, flaky, caplog):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = Publisher(), []
    engine = leader_at(opts, clock, pub, fired)
    jobstore = engine.scheduler._lookup_jobstore("default")
    caplog.set_level(logging.INFO, logger="apscheduler")
    caplog.set_level(logging.DEBUG, logger=scheduler.__name__)  # the handler's level: the last one set
    try:
        flaky[0].down = True
        for index in range(20):  # five minutes of rounds
            clock.advance(15)
            assert engine.tick() is False
            engine.lease_step()
            assert jobstore.get_due_jobs(datetime.datetime.now(datetime.timezone.utc)) == []
            if index in (3, 4):
                assert run_transition(engine) is None
            if index == 5:
                engine.sweep(1, 1, False)  # a verification sweep falling due meanwhile
        assert flaky[0].refused >= 60
        flaky[0].down = False
        clock.advance(15)
        assert engine.lease_step() is True and engine.tick() is True
    finally:
        engine.stop()
    assert len(messages(caplog, "the kiosk database does not answer")) == 1
    assert len(messages(caplog, "the kiosk database answers again")) == 1
    assert len(messages(caplog, "while the kiosk database did not answer")) == 1  # stepped down once
    assert len(messages(caplog, "failed", logging.DEBUG)) >= 60  # the rest is in the debug log
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert [data.get("error", "")[:22] for data in tags(fired, "kiosk/power/sweep")] == ["ConnectionRefusedError"]
    # The transition ran once after the outage (320 s late at most; within grace).
    assert len(pub.calls) == 1 and runs(loaded) == [("kiosk-e1", "on", "done")]


def test_a_long_outage_repeats_the_warning_at_most_every_ten_minutes(opts, loaded, flaky, caplog):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    engine = leader_at(opts, clock, Publisher(), [])
    caplog.set_level(logging.WARNING, logger=scheduler.__name__)
    try:
        flaky[0].down = True
        for _ in range(4 * 25):  # 25 minutes
            clock.advance(15)
            engine.tick()
            engine.lease_step()
    finally:
        flaky[0].down = False
        engine.stop()
    assert len(messages(caplog, "the kiosk database does not answer")) == 1
    assert len(messages(caplog, "the kiosk database still does not answer")) == 2


def test_the_job_store_rides_out_an_outage_in_apschedulers_loop(opts, loaded, flaky, caplog):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    engine = leader_at(opts, clock, Publisher(), [])
    jobstore = engine.scheduler._lookup_jobstore("default")
    loop = engine.scheduler._thread
    tick_job = jobstore.lookup_job(scheduler.TICK_JOB)
    caplog.set_level(logging.INFO, logger="apscheduler")
    try:
        flaky[0].down = True
        now = datetime.datetime.now(datetime.timezone.utc)
        assert jobstore.get_due_jobs(now) == []
        retry = (jobstore.get_next_run_time() - now).total_seconds()
        assert 0 < retry <= 11  # looks again in min(10, tick / 2) seconds
        # The engine's own planning calls still raise: their callers must know.
        with pytest.raises(OperationalError):
            jobstore.remove_job(scheduler.TICK_JOB)
        with pytest.raises(OperationalError):
            jobstore.update_job(tick_job)
        # In APScheduler's loop an error would end its thread: reported, carried on.
        done = []
        in_loop = threading.Thread(
            target=lambda: done.extend([jobstore.update_job(tick_job), jobstore.remove_job(scheduler.TICK_JOB)])
        )
        engine.scheduler._thread = in_loop
        try:
            in_loop.start()
            in_loop.join()
        finally:
            engine.scheduler._thread = loop
        assert done == [None, None]
        # The real loop, woken up in the outage, keeps running.
        failures = engine.health.failures
        engine.scheduler.wakeup()
        deadline = time.monotonic() + 5
        while engine.health.failures == failures and time.monotonic() < deadline:
            time.sleep(0.02)
        assert engine.health.failures > failures and loop.is_alive()
        flaky[0].down = False
        assert jobstore.lookup_job(scheduler.TICK_JOB) is not None  # nothing was removed
    finally:
        flaky[0].down = False
        engine.stop()
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == [], [r.getMessage() for r in noisy]


def test_the_database_dying_during_the_publish_records_the_transition_once_it_returns(opts, loaded, flaky):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    fired = []

    class DyingPublisher(Publisher):
        def __call__(self, opts, jobs, timeout):
            out = super().__call__(opts, jobs, timeout)
            flaky[0].down = True  # the packets went out; the database dies before they are recorded
            return out

    pub = DyingPublisher()
    engine = leader_at(opts, clock, pub, fired)
    try:
        clock.now = AT + 5 * MOMENT
        outcome = engine.execute(AT, "on", "morning", ["kiosk-e1"])
        assert outcome["status"] == "deferred" and "Can't connect to MySQL server" in outcome["error"]
        flaky[0].down = False
        assert runs(loaded) == [("kiosk-e1", "on", "sending")] and power_events(loaded) == []
        clock.advance(30)
        assert engine.tick() is True
        assert len(pub.calls) == 1  # not sent again
        assert runs(loaded) == [("kiosk-e1", "on", "done")]
        events = power_events(loaded)
        assert len(events) == 1 and events[0]["kiosks"]["kiosk-e1"]["ok"] is True
        assert events[0]["kiosks"]["kiosk-e1"]["acked"] == ["relay-e1", "relay-e2"]
        assert [data["event"] for data in tags(fired, "kiosk/power/wake")] == [events[0]["id"]]
        assert sweep_jobs(engine) == [f"{scheduler.SWEEP_PREFIX}{events[0]['id']}:{n}" for n in (1, 2, 3)]
        assert engine._sent == {}
    finally:
        engine.stop()


def test_the_engine_waits_for_the_database_at_start(opts, loaded, monkeypatch, caplog):
    real_open = store.open_store
    attempts = []

    def open_late(opts):
        attempts.append(1)
        if len(attempts) < 3:
            raise KioskStoreError("kiosk database mysql://db/kiosk is unavailable: OperationalError: (2003, 'refused')")
        return real_open(opts)

    monkeypatch.setattr(store, "open_store", open_late)
    caplog.set_level(logging.WARNING, logger=scheduler.__name__)
    clock = Clock(AT - datetime.timedelta(minutes=1))
    engine = scheduler.Engine(opts, tick=0.1, publish=Publisher(), clock=clock, node="mom-a")
    engine.start()
    try:
        assert len(attempts) == 3 and engine.leading
    finally:
        engine.stop()
    assert len(messages(caplog, "the kiosk database does not answer (opening the store")) == 1
    assert len(messages(caplog, "the kiosk database answers again (opening the store)")) == 1


# -- a master killed in the middle of a transition ------------------------------


def successor_of(first, kind, opts, clock, pub, fired):
    """After ``first`` died: mom-a restarted, or the standby mom-b once mom-a's lease expired."""
    first.stop(release=False)
    if kind == "restarted":
        engine = master(opts, "mom-a", clock, pub, fired)
        engine.start()
    else:
        engine = master(opts, "mom-b", clock, pub, fired)
        engine.start()
        clock.advance(60)
        assert engine.lease_step() is True
    assert engine.leading
    return engine


@pytest.mark.parametrize("kind", ["restarted", "standby"])
def test_killed_after_claiming_before_publishing_the_successor_runs_it_once(opts, loaded, monkeypatch, kind):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = Publisher(), []
    first = leader_at(opts, clock, pub, fired)
    clock.now = AT + 5 * MOMENT
    resolve = actions.resolve_kiosks

    def die(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(actions, "resolve_kiosks", die)
    with pytest.raises(Crash):
        run_transition(first)
    monkeypatch.setattr(actions, "resolve_kiosks", resolve)
    assert runs(loaded) == [("kiosk-e1", "on", "claimed")] and pub.calls == []
    engine = successor_of(first, kind, opts, clock, pub, fired)
    try:
        assert len(pub.calls) == 1 and pub.calls[0]["east"]["fun"] == "kiosk.wake"
        assert runs(loaded) == [("kiosk-e1", "on", "done")]
        # The job firing again, another catch-up: nothing twice.
        assert run_transition(engine) is None
        assert handled_already(engine.catch_up())
        assert len(pub.calls) == 1 and len(power_events(loaded)) == 1
    finally:
        engine.stop()


def test_killed_after_claiming_a_transition_already_late_is_recorded_missed(opts, loaded, monkeypatch):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = Publisher(), []
    first = leader_at(opts, clock, pub, fired)
    clock.now = AT + 5 * MOMENT
    monkeypatch.setattr(actions, "resolve_kiosks", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        run_transition(first)
    monkeypatch.undo()
    clock.now = AT + datetime.timedelta(minutes=20)
    engine = successor_of(first, "restarted", opts, clock, pub, fired)
    try:
        assert pub.calls == [] and runs(loaded) == [("kiosk-e1", "on", "missed")]
        assert [data["kiosks"] for data in tags(fired, "kiosk/power/missed")] == [["kiosk-e1"]]
    finally:
        engine.stop()


@pytest.mark.parametrize("kind", ["restarted", "standby"])
@pytest.mark.parametrize("crash", ["collecting", "recording"])
def test_killed_after_publishing_the_successor_does_not_send_again(opts, loaded, monkeypatch, kind, crash):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = ReturningPublisher(loaded, crash="collecting" if crash == "collecting" else None), []
    first = leader_at(opts, clock, pub, fired)
    clock.now = AT + 5 * MOMENT
    if crash == "recording":
        monkeypatch.setattr(actions, "record_event", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        run_transition(first)
    monkeypatch.undo()
    assert len(pub.calls) == 1 and runs(loaded) == [("kiosk-e1", "on", "sending")]
    with loaded.connect() as conn:
        claim = conn.execute(sa.select(schema.schedule_runs)).one()
    assert claim.holder == "mom-a" and claim.jid == pub.jids[0] and salt.utils.jid.is_jid(claim.jid)
    engine = successor_of(first, kind, opts, clock, pub, fired)
    try:
        assert len(pub.calls) == 1  # not sent again
        assert runs(loaded) == [("kiosk-e1", "on", "done")]
        events = power_events(loaded)
        # The power event is recorded from the returns the relays recorded under the jid.
        assert len(events) == 1 and events[0]["kiosks"]["kiosk-e1"]["ok"] is True
        assert events[0]["kiosks"]["kiosk-e1"]["acked"] == ["relay-e1", "relay-e2"]
        with loaded.connect() as conn:
            claim = conn.execute(sa.select(schema.schedule_runs)).one()
        holder = "mom-a" if kind == "restarted" else "mom-b"
        assert (claim.holder, claim.jid, claim.event_id) == (holder, pub.jids[0], events[0]["id"])
        assert sweep_jobs(engine) == [f"{scheduler.SWEEP_PREFIX}{events[0]['id']}:{n}" for n in (1, 2, 3)]
        assert run_transition(engine) is None and handled_already(engine.catch_up())
        assert len(pub.calls) == 1 and len(power_events(loaded)) == 1
    finally:
        engine.stop()


def test_killed_after_recording_the_jid_before_the_publish_went_out_it_is_sent_once(opts, loaded):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = ReturningPublisher(loaded, crash="before"), []
    first = leader_at(opts, clock, pub, fired)
    clock.now = AT + 5 * MOMENT
    with pytest.raises(Crash):
        run_transition(first)
    assert pub.calls == [] and runs(loaded) == [("kiosk-e1", "on", "sending")]
    with loaded.connect() as conn:
        lost_jid = conn.execute(sa.select(schema.schedule_runs.c.jid)).scalar_one()
    engine = successor_of(first, "restarted", opts, clock, pub, fired)
    try:
        assert len(pub.calls) == 1 and runs(loaded) == [("kiosk-e1", "on", "done")]
        assert pub.jids != [lost_jid]  # published under a new jid of its own
        assert len(power_events(loaded)) == 1
    finally:
        engine.stop()


def test_a_deposed_leader_does_not_publish_claims_taken_over_meanwhile(opts, loaded, monkeypatch):
    clock = Clock(AT - datetime.timedelta(minutes=1))
    pub, fired = Publisher(), []
    first = leader_at(opts, clock, pub, fired)
    second = master(opts, "mom-b", clock, pub, fired)
    second.start()
    clock.now = AT + 5 * MOMENT
    resolve = actions.resolve_kiosks
    hung = []

    def hang(*args, **kwargs):
        if not hung:
            # mom-a hangs after claiming: its lease expires and mom-b takes over.
            hung.append(1)
            clock.advance(120)
            assert second.lease_step() is True
        return resolve(*args, **kwargs)

    monkeypatch.setattr(actions, "resolve_kiosks", hang)
    try:
        outcome = first.execute(AT, "on", "morning", ["kiosk-e1"])
        assert outcome["status"] == "taken over"
        assert len(pub.calls) == 1 and runs(loaded) == [("kiosk-e1", "on", "done")]
        with loaded.connect() as conn:
            assert conn.execute(sa.select(schema.schedule_runs.c.holder)).scalar_one() == "mom-b"
        assert first.lease_step() is False
    finally:
        second.stop()
        first.stop()


# -- schema and job ids -----------------------------------------------------------


def test_schema_12_adds_holder_and_jid_to_existing_schedule_runs(kstore):
    legacy = sa.Table(
        schema.schedule_runs.name,
        sa.MetaData(),
        *(
            sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in schema.schedule_runs.c
            if c.name not in ("holder", "jid")
        ),
        **schema.MYSQL_TABLE,
    )
    at = AT.replace(tzinfo=None)
    with kstore.begin() as conn:
        schema.schedule_runs.drop(conn)
        legacy.create(conn)
        conn.execute(
            legacy.insert().values(
                at=at, minion_id="kiosk-e1", state="on", rule="morning", status="running", recorded_at=at
            )
        )
        conn.execute(schema.schema_table.delete().where(schema.schema_table.c.version >= 12))
    assert migrations.upgrade(kstore.engine) == list(range(12, migrations.SCHEMA_VERSION + 1))
    assert migrations.upgrade(kstore.engine) == []
    with kstore.connect() as conn:
        inspector = sa.inspect(conn)
        columns = {c["name"]: c for c in inspector.get_columns(schema.schedule_runs.name)}
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(schema.schedule_runs.name)}
        row = conn.execute(sa.select(schema.schedule_runs)).one()
    assert set(columns) == {c.name for c in schema.schedule_runs.c}
    assert columns["holder"]["nullable"] and columns["jid"]["nullable"]
    assert indexes["ix_kiosk_schedule_runs_status"] == ["status"]
    # A claim of an older release is kept as it was (and left alone by the engine).
    assert (row.minion_id, row.status, row.holder, row.jid) == ("kiosk-e1", "running", None, None)


@pytest.mark.parametrize("unique", [False, True])
def test_job_ids_are_unique_even_within_one_microsecond(monkeypatch, unique):
    frozen = datetime.datetime(2026, 11, 25, 8, 0, 59, 999999, tzinfo=datetime.timezone.utc)
    monkeypatch.setattr(salt.utils.jid, "_utc_now", lambda: frozen)
    monkeypatch.setattr(scheduler, "_LAST_JID", None)
    monkeypatch.setattr(salt.utils.jid, "LAST_JID_DATETIME", None)
    jids = [scheduler.new_jid({"unique_jid": unique}) for _ in range(3)]
    stamps = [jid[:20] for jid in jids]
    assert stamps == ["20261125080059999999", "20261125080100000000", "20261125080100000001"]
    assert all(salt.utils.jid.is_jid(jid) for jid in jids)
    assert all(jid.endswith(f"_{os.getpid()}") for jid in jids) is unique
