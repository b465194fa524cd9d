"""
The schedule engine over the real store and real APScheduler (SQLAlchemy job
store in the same database). The publisher stands in for the daemon tree and
the clock is fixed; the engine in a real master is covered by
tests/integration/test_schedule.py.
"""

import datetime

import pytest
import sqlalchemy as sa

from salt_kiosk import inventory, rules, scheduler

UTC = datetime.timezone.utc
CSV = (
    "code,minion_id,campus,groups,ip,mac,vnc_port\n"
    "E01,kiosk-e1,east,opd,10.1.0.11,02:00:00:00:0e:01,5901\n"
    "W01,kiosk-w1,west,opd,10.2.0.11,02:00:00:00:0f:01,5911\n"
)
# 2026-12-01 08:00 in Asia/Shanghai is 00:00 UTC.
AT = datetime.datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


class Publisher:
    def __init__(self):
        self.calls = []

    def __call__(self, opts, jobs, timeout):
        self.calls.append(jobs)
        out = {}
        for key, job in jobs.items():
            if job["fun"] == "kiosk.wake":
                ret = {mac: {"packets": job["kwarg"]["repeat"]} for mac in job["arg"][0]}
            else:
                ret = {"result": True, "command": ["shutdown"]}
            out[key] = {minion: {"ret": ret, "retcode": 0} for minion in job["tgt"]}
        return out


@pytest.fixture
def loaded(kstore, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    rules.add(kstore, "morning", state="on", days="daily", start="08:00", end="09:00", target="campus:east")
    return kstore


def make_engine(opts, now, publisher, fired=None):
    return scheduler.Engine(
        opts, grace=600, tick=3600, sweep_delays=(300, 600, 900), publish=publisher,
        fire=(lambda data, tag: fired.append((tag, data))) if fired is not None else None,
        clock=lambda: now,
    )


def set_last_tick(kstore, moment):
    with kstore.begin() as conn:
        scheduler._set_meta(conn, "engine_last_tick", moment.replace(tzinfo=None).isoformat())


def runs(kstore):
    with kstore.connect() as conn:
        return [(r.minion_id, r.state, r.status) for r in conn.execute(sa.select(scheduler.kstore_mod.schedule_runs).order_by("at"))]


def test_plan_is_materialised_in_the_database_job_store(opts, loaded):
    pub = Publisher()
    engine = make_engine(opts, AT - datetime.timedelta(hours=1), pub)
    engine.start()
    try:
        status = scheduler.status(loaded)
        assert status["next_transitions"][:2] == [
            {"at": "2026-12-01T00:00:00+00:00", "state": "on", "rule": "morning"},
            {"at": "2026-12-01T01:00:00+00:00", "state": "off", "rule": None},
        ]
        with loaded.connect() as conn:
            stored = conn.execute(sa.text(f"SELECT id FROM {scheduler.JOBSTORE_TABLE}")).scalars().all()
        assert f"{scheduler.POWER_PREFIX}2026-12-01T00:00:00:on:morning" in stored
        assert scheduler.TICK_JOB in stored
        # A rule change is picked up by a re-plan: the east window moves.
        rules.update(loaded, "morning", start="08:30")
        engine.tick()
        assert scheduler.status(loaded)["next_transitions"][0]["at"] == "2026-12-01T00:30:00+00:00"
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
    assert {"at": "2026-12-01T14:00:00+00:00", "state": "on", "rule": "campus:east-night"} in upcoming
