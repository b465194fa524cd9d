"""
The schedule engine over the real store and real APScheduler (the plain-data
job store in the same database). The publisher stands in for the daemon tree
and the clock is fixed; the engine in a real master is covered by
tests/integration/test_schedule.py, a poisoned database by
tests/functional/security/test_no_code_from_db.py.
"""

import datetime
import json
import logging
import os
import pickle

import pytest
import sqlalchemy as sa

from salt_kiosk import inventory
from salt_kiosk.db import migrations, schema
from salt_kiosk.errors import KioskInputError
from salt_kiosk.power import engine as scheduler
from salt_kiosk.power import rules

UTC = datetime.timezone.utc
CSV = (
    "code,minion_id,campus,groups,ip,mac,vnc_port\n"
    "E01,kiosk-e1,east,opd,10.1.0.11,02:00:00:00:0e:01,5901\n"
    "W01,kiosk-w1,west,opd,10.2.0.11,02:00:00:00:0f:01,5911\n"
)
# A day a month ahead (the rules are daily): 08:00 in Asia/Shanghai is 00:00 UTC.
# Relative to the real date, because APScheduler's own loop runs on the real
# clock: a fixed day would fall into the past and be seen as missed.
AT = (datetime.datetime.now(UTC) + datetime.timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
DAY = AT.date().isoformat()


class Publisher:
    def __init__(self):
        self.calls = []
        self.timeouts = []

    def __call__(self, opts, jobs, timeout):
        self.calls.append(jobs)
        self.timeouts.append(timeout)
        out = {}
        for key, job in jobs.items():
            if job["fun"] == "kiosk.wake":
                ret = {mac: {"packets": job["kwarg"]["repeat"]} for mac in job["arg"][0]}
            else:
                ret = {"result": True, "command": ["shutdown"]}
            out[key] = {minion: {"ret": ret, "retcode": 0} for minion in job["tgt"]}
        return out


def load_fleet(kstore, tmp_path):
    """Two kiosks and the east campus's 08:00-09:00 ``morning`` rule in ``kstore``."""
    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    rules.add(kstore, "morning", state="on", days="daily", start="08:00", end="09:00", target="campus:east")
    return kstore


@pytest.fixture
def loaded(kstore, tmp_path):
    return load_fleet(kstore, tmp_path)


def make_engine(opts, now, publisher, fired=None):
    return scheduler.Engine(
        opts,
        grace=600,
        tick=3600,
        sweep_delays=(300, 600, 900),
        publish=publisher,
        # The power events; leadership events are the lease tests' business.
        fire=(lambda data, tag: tag == LEADER_TAG or fired.append((tag, data))) if fired is not None else None,
        clock=lambda: now,
    )


LEADER_TAG = "kiosk/engine/leader"


def set_last_tick(kstore, moment):
    with kstore.begin() as conn:
        scheduler._set_meta(conn, "engine_last_tick", moment.replace(tzinfo=None).isoformat())


def runs(kstore):
    with kstore.connect() as conn:
        return [
            (r.minion_id, r.state, r.status)
            for r in conn.execute(sa.select(scheduler.schema.schedule_runs).order_by("at"))
        ]


def test_plan_is_materialised_in_the_database_job_store(opts, loaded):
    pub = Publisher()
    engine = make_engine(opts, AT - datetime.timedelta(hours=1), pub)
    engine.start()
    try:
        status = scheduler.status(loaded)
        assert status["next_transitions"][:2] == [
            {"at": f"{DAY}T00:00:00+00:00", "state": "on", "rule": "morning"},
            {"at": f"{DAY}T01:00:00+00:00", "state": "off", "rule": None},
        ]
        with loaded.connect() as conn:
            stored = conn.execute(sa.text(f"SELECT id FROM {scheduler.JOBSTORE_TABLE}")).scalars().all()
        assert f"{scheduler.POWER_PREFIX}{DAY}T00:00:00:on:morning" in stored
        assert scheduler.TICK_JOB in stored
        # A rule change is picked up by a re-plan: the east window moves.
        rules.update(loaded, "morning", start="08:30")
        engine.tick()
        assert scheduler.status(loaded)["next_transitions"][0]["at"] == f"{DAY}T00:30:00+00:00"
    finally:
        engine.stop()
    assert pub.calls == []


def test_transition_runs_once_even_if_fired_again(opts, loaded):
    pub, fired = Publisher(), []
    engine = make_engine(opts, AT + datetime.timedelta(seconds=5), pub, fired)
    engine.start()
    try:
        first = engine.execute(AT, "on", "morning", ["kiosk-e1"])
        second = engine.execute(AT, "on", "morning", ["kiosk-e1"])
        sweeps = sorted(job.id for job in engine.scheduler.get_jobs() if job.id.startswith(scheduler.SWEEP_PREFIX))
    finally:
        engine.stop()
    assert first["status"] == "done" and second["status"] == "already handled"
    assert len(pub.calls) == 1 and pub.calls[0]["east"]["tgt"] == ["relay-e1", "relay-e2"]
    assert runs(loaded) == [("kiosk-e1", "on", "done")]
    assert [tag for tag, _d in fired] == ["kiosk/power/wake"]
    assert sweeps == [f"{scheduler.SWEEP_PREFIX}{first['event']}:{n}" for n in (1, 2, 3)]


def test_transitions_wait_power_timeout_for_the_answers(opts, loaded):
    pub = Publisher()
    engine = scheduler.Engine(opts, tick=3600, power_timeout=45, publish=pub, clock=lambda: AT)
    engine.start()
    try:
        engine.execute(AT, "on", "morning", ["kiosk-e1"])
        engine.execute(AT + datetime.timedelta(hours=1), "off", None, ["kiosk-e1"])
    finally:
        engine.stop()
    assert pub.timeouts == [45, 45]
    # The default gives relays behind syndics under load longer than a manual call's 10 s.
    assert scheduler.Engine(opts).power_timeout == 30
    with pytest.raises(KioskInputError, match="timeout.*'soon'"):
        scheduler.Engine(opts, power_timeout="soon")


def test_restart_within_grace_runs_missed_transition_once(opts, loaded):
    set_last_tick(loaded, AT - datetime.timedelta(minutes=10))
    pub = Publisher()
    engine = make_engine(opts, AT + datetime.timedelta(minutes=5), pub)
    engine.start()
    engine.stop()
    assert len(pub.calls) == 1
    assert runs(loaded) == [("kiosk-e1", "on", "done")]
    # Restarted again a minute later: nothing runs twice.
    set_last_tick(loaded, AT - datetime.timedelta(minutes=10))
    engine = make_engine(opts, AT + datetime.timedelta(minutes=6), pub)
    engine.start()
    engine.stop()
    assert len(pub.calls) == 1
    assert scheduler.status(loaded)["executed"] == 1


def test_restart_after_grace_records_missed(opts, loaded):
    set_last_tick(loaded, AT - datetime.timedelta(minutes=10))
    pub, fired = Publisher(), []
    engine = make_engine(opts, AT + datetime.timedelta(minutes=30), pub, fired)
    engine.start()
    engine.stop()
    assert pub.calls == []
    assert runs(loaded) == [("kiosk-e1", "on", "missed")]
    status = scheduler.status(loaded)
    assert status["missed_count"] == 1 and status["missed"][0]["kiosk"] == "kiosk-e1"
    assert fired[0][0] == "kiosk/power/missed" and fired[0][1]["kiosks"] == ["kiosk-e1"]


def test_restart_does_not_run_jobs_of_a_rule_removed_meanwhile(opts, loaded):
    pub = Publisher()
    engine = make_engine(opts, AT - datetime.timedelta(minutes=1), pub)
    engine.start()
    engine.stop()
    rules.remove(loaded, "morning")
    set_last_tick(loaded, AT - datetime.timedelta(minutes=1))
    engine = make_engine(opts, AT + datetime.timedelta(minutes=2), pub)
    engine.start()
    try:
        assert not [j for j in engine.scheduler.get_jobs() if j.id.startswith(scheduler.POWER_PREFIX)]
    finally:
        engine.stop()
    assert pub.calls == [] and runs(loaded) == []


def test_start_after_a_very_long_outage(opts, loaded):
    set_last_tick(loaded, AT - datetime.timedelta(days=70))
    engine = make_engine(opts, AT + datetime.timedelta(minutes=30), Publisher())
    engine.start()
    engine.stop()
    assert scheduler.status(loaded)["missed_count"] >= 1


def test_status_reads_rule_names_with_colons(opts, loaded):
    rules.add(loaded, "campus:east-night", state="on", days="daily", start="22:00", end="23:00", target="campus:east")
    engine = make_engine(opts, AT - datetime.timedelta(hours=1), Publisher())
    engine.start()
    try:
        upcoming = scheduler.status(loaded, limit=50)["next_transitions"]
    finally:
        engine.stop()
    assert {"at": f"{DAY}T14:00:00+00:00", "state": "on", "rule": "campus:east-night"} in upcoming


class Touch:
    """Unpickling this creates ``path``: the stand-in for code run from the database."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def job_fields(job):
    trigger = job.trigger
    fields = {
        name: getattr(trigger, name, None) for name in ("run_date", "start_date", "end_date", "interval", "jitter")
    }
    if hasattr(trigger, "timezone"):
        fields["timezone"] = trigger.timezone.utcoffset(None)
    return {
        "id": job.id,
        "name": job.name,
        "func": job.func,
        "func_ref": job.func_ref,
        "args": list(job.args),
        "kwargs": job.kwargs,
        "executor": job.executor,
        "misfire_grace_time": job.misfire_grace_time,
        "coalesce": job.coalesce,
        "max_instances": job.max_instances,
        "next_run_time": job.next_run_time,
        "trigger": (type(trigger).__name__, fields),
    }


def stored_rows(kstore):
    with kstore.connect() as conn:
        return {row.id: row for row in conn.execute(sa.select(schema.scheduler_jobs))}


def test_job_store_round_trips_the_engines_jobs(opts, loaded):
    engine = make_engine(opts, AT + datetime.timedelta(seconds=5), Publisher())
    engine.start()
    try:
        done = engine.execute(AT, "on", "morning", ["kiosk-e1"])  # schedules its three sweeps
        added = {
            job.id: job_fields(job)
            for job in (
                engine.scheduler.add_job(
                    scheduler.run_transition,
                    "date",
                    run_date=AT + datetime.timedelta(days=1),
                    id="kiosk-power:rt",
                    args=[engine.key, AT.isoformat(), "off", None, ["kiosk-e1", "kiosk-w1"]],
                ),
                engine.scheduler.add_job(
                    scheduler.run_sweep,
                    "date",
                    run_date=AT + datetime.timedelta(days=1),
                    id="kiosk-sweep:rt",
                    args=[engine.key, 7, 2, False],
                ),
                engine.scheduler.add_job(
                    scheduler.run_tick,
                    "interval",
                    seconds=12.5,
                    id="tick-rt",
                    args=[engine.key],
                    misfire_grace_time=None,
                    coalesce=False,
                    max_instances=2,
                ),
            )
        }
        running = {job.id: job_fields(job) for job in engine.scheduler.get_jobs()}
        fresh = scheduler.PlainJobStore(loaded.engine, key=engine.key)
        reloaded = {job.id: job_fields(job) for job in fresh.get_all_jobs()}
        looked_up = {job_id: job_fields(fresh.lookup_job(job_id)) for job_id in added}
    finally:
        engine.stop()
    assert looked_up == added
    assert reloaded == running
    kinds = {fields["func"] for fields in reloaded.values()}
    assert kinds == {scheduler.run_transition, scheduler.run_sweep, scheduler.run_tick}
    assert {f"{scheduler.SWEEP_PREFIX}{done['event']}:{n}" for n in (1, 2, 3)} <= set(reloaded)
    # What is stored is JSON naming one of the engine's own functions.
    rows = stored_rows(loaded)
    assert set(rows) == set(reloaded)
    for row in rows.values():
        document = json.loads(row.job)
        assert document["func"] in scheduler.JOB_FUNCTIONS and document["id"] == row.id
        assert document["trigger"]["type"] in ("date", "interval")
    assert json.loads(rows["tick-rt"].job)["trigger"] == {
        "type": "interval",
        "seconds": 12.5,
        "start_date": json.loads(rows["tick-rt"].job)["trigger"]["start_date"],
        "end_date": None,
        "timezone": "UTC",
        "jitter": None,
    }


def test_job_store_refuses_anything_but_the_engines_functions(opts, loaded):
    engine = make_engine(opts, AT - datetime.timedelta(hours=1), Publisher())
    engine.start()
    try:
        with pytest.raises(ValueError, match="not one of the engine's job functions"):
            engine.scheduler.add_job(os.getcwd, "date", run_date=AT, id="not-ours")
        with pytest.raises(ValueError, match="only date and interval triggers"):
            engine.scheduler.add_job(scheduler.run_tick, "cron", minute="*", id="cron-tick", args=[engine.key])
        assert "not-ours" not in stored_rows(loaded) and "cron-tick" not in stored_rows(loaded)
    finally:
        engine.stop()


def transition_document(key, job_id, **changes):
    """A valid stored transition job of engine ``key``, with ``changes``."""
    return {
        "version": 1,
        "id": job_id,
        "name": "run_transition",
        "func": "salt_kiosk.power.engine:run_transition",
        "args": [key, AT.isoformat(), "on", "morning", ["kiosk-e1"]],
        "trigger": {"type": "date", "run_date": AT.isoformat()},
        "executor": "default",
        "misfire_grace_time": 600,
        "coalesce": True,
        "max_instances": 1,
        **changes,
    }


def bad_rows(key, marker):
    """Stored jobs the engine must refuse: (id, job text)."""

    def doc(job_id, **changes):
        return job_id, json.dumps(transition_document(key, job_id, **changes))

    return [
        ("kiosk-power:pickled", pickle.dumps(Touch(marker), protocol=0).decode("ascii")),
        doc("kiosk-power:os-system", func="os:system", args=[f"touch {marker}"]),
        doc("kiosk-power:posix-system", func="posix:system", args=[key, f"touch {marker}"]),
        doc("kiosk-power:library-function", func="salt_kiosk.power.actions:wake", args=[key]),
        doc("kiosk-power:engine-class", func="salt_kiosk.power.engine:Engine", args=[key]),
        doc("kiosk-power:bad-state", args=[key, AT.isoformat(), "reboot", None, ["kiosk-e1"]]),
        doc("kiosk-power:no-minions", args=[key, AT.isoformat(), "on", None, []]),
        doc("kiosk-power:naive-time", args=[key, f"{DAY}T00:00:00", "on", None, ["kiosk-e1"]]),
        doc("kiosk-power:other-engine", args=["elsewhere", AT.isoformat(), "on", None, ["kiosk-e1"]]),
        doc("kiosk-power:cron", trigger={"type": "cron", "minute": "*"}),
        doc("kiosk-power:kwargs", kwargs={"x": 1}),
        doc("kiosk-power:executor", executor="processpool"),
        doc("kiosk-power:id-mismatch", id="kiosk-power:other"),
        doc("kiosk-sweep:bad-event", func="salt_kiosk.power.engine:run_sweep", args=[key, "1; drop", 1, True]),
        doc("kiosk-power:nan", misfire_grace_time=float("nan")),
        ("kiosk-power:not-json", "{'func': 'os:system'}"),
        ("kiosk-power:json-list", "[]"),
    ]


def test_job_store_drops_invalid_rows_without_running_them(opts, loaded, tmp_path, caplog):
    marker = tmp_path / "ran-from-db"
    pub = Publisher()
    engine = make_engine(opts, AT - datetime.timedelta(hours=1), pub)
    engine.start()
    try:
        valid = stored_rows(loaded)
        past = (datetime.datetime.now(UTC) - datetime.timedelta(minutes=1)).timestamp()
        with loaded.begin() as conn:
            for job_id, text in bad_rows(engine.key, str(marker)):
                conn.execute(schema.scheduler_jobs.insert().values(id=job_id, next_run_time=past, job=text))
        # Status shows none of them, even before the engine dropped them.
        status = scheduler.status(loaded, limit=50)
        assert {(t["state"], t["rule"]) for t in status["next_transitions"]} == {("on", "morning"), ("off", None)}
        caplog.set_level(logging.ERROR, logger=scheduler.__name__)
        fresh = scheduler.PlainJobStore(loaded.engine, key=engine.key)
        assert fresh.lookup_job("kiosk-power:os-system") is None
        assert fresh.get_due_jobs(datetime.datetime.now(UTC)) == []
        assert {job.id for job in engine.scheduler.get_jobs()} == set(valid)
    finally:
        engine.stop()
    assert not marker.exists()
    assert pub.calls == [] and runs(loaded) == []
    assert set(stored_rows(loaded)) == set(valid)  # the bad rows are deleted, the engine's kept
    # Each refusal is logged (the running scheduler may get to a row first, or as well).
    refused = [r.getMessage() for r in caplog.records if "is not a valid engine job" in r.getMessage()]
    assert {m.split("'")[1] for m in refused} == {job_id for job_id, _text in bad_rows(engine.key, str(marker))}
    assert any(
        "'kiosk-power:os-system'" in m and "'os:system' is not one of the engine's job functions" in m for m in refused
    )


def test_migration_drops_the_pickled_job_table_unread(kstore, tmp_path):
    marker = tmp_path / "ran-from-db"
    with kstore.begin() as conn:
        conn.execute(schema.schema_table.delete().where(schema.schema_table.c.version >= 9))
    old = sa.Table(
        "kiosk_apscheduler_jobs",
        sa.MetaData(),
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25), index=True),
        sa.Column("job_state", sa.LargeBinary, nullable=False),
    )
    old.create(kstore.engine)
    with kstore.begin() as conn:
        conn.execute(
            old.insert().values(id=scheduler.TICK_JOB, next_run_time=0.0, job_state=pickle.dumps(Touch(str(marker))))
        )
    assert migrations.upgrade(kstore.engine) == list(range(9, migrations.SCHEMA_VERSION + 1))
    with kstore.connect() as conn:
        assert not sa.inspect(conn).has_table("kiosk_apscheduler_jobs")
        assert sa.inspect(conn).has_table(scheduler.JOBSTORE_TABLE)
    assert not marker.exists()


def test_migration_renames_the_engine_functions_of_stored_jobs(kstore):
    """Jobs stored before the engine moved to salt_kiosk.power.engine still load after schema 10."""
    key = "kiosk"
    document = transition_document(key, "kiosk-power:moved", func="salt_kiosk.scheduler:run_transition")
    with kstore.begin() as conn:
        conn.execute(
            schema.scheduler_jobs.insert().values(id="kiosk-power:moved", next_run_time=0.0, job=json.dumps(document))
        )
        conn.execute(schema.schema_table.delete().where(schema.schema_table.c.version >= 10))
    with pytest.raises(scheduler.InvalidJobRow):  # the old reference is not an engine function any more
        scheduler.decode_document("kiosk-power:moved", json.dumps(document), key=key)
    assert migrations.upgrade(kstore.engine) == list(range(10, migrations.SCHEMA_VERSION + 1))
    with kstore.connect() as conn:
        text = conn.execute(sa.select(schema.scheduler_jobs.c.job)).scalar_one()
    assert json.loads(text)["func"] == "salt_kiosk.power.engine:run_transition"
    func_ref, _document = scheduler.decode_document("kiosk-power:moved", text, key=key)
    assert scheduler.JOB_FUNCTIONS[func_ref] is scheduler.run_transition
