"""
Job results (the kiosk_mysql returner's library) on SQLite. The same tests run
on MariaDB in tests/functional/mariadb/test_jobresults.py, with the spool tests
that need a network database to lose.
"""

import json

import pytest
import sqlalchemy as sa

from salt_kiosk import clock
from salt_kiosk.db import migrations, schema, store
from salt_kiosk.jobs import cache, writer


def owner_creates_schema(url):
    """The master of masters creates the schema; relays' returners never migrate."""
    engine = store.make_engine(url)
    migrations.upgrade(engine)
    engine.dispose()


@pytest.fixture
def master(opts, tmp_path):
    """Returner options of one master writing into the test database."""
    if opts["kiosk"].get("db"):
        owner_creates_schema(opts["kiosk"]["db"])

    def make(master_id, db=None, spool="spool", spool_max=1000):
        conf = {
            "db": db or (opts["kiosk"].get("db")),
            "master_id": master_id,
            "spool_dir": str(tmp_path / spool),
            "spool_max": spool_max,
        }
        return {"cachedir": opts["cachedir"], "kiosk_mysql": conf}

    yield make
    writer.JobResults.dispose_all()


def ret(jid, minion, value, fun="test.echo"):
    return {"jid": jid, "id": minion, "fun": fun, "fun_args": [value], "return": value, "retcode": 0, "success": True}


def count(opts, table):
    results = writer.JobResults.get(opts)
    with results.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def test_same_jid_from_two_masters_is_one_job_and_no_error(master):
    east, west = writer.JobResults.get(master("relay-e1")), writer.JobResults.get(master("relay-w1"))
    load = {"fun": "test.ping", "tgt": "*", "arg": []}
    assert east.write("load", east.load_item("20261125000000000001", load, ["kiosk-e1", "kiosk-w1"])) == "written"
    assert west.write("load", west.load_item("20261125000000000001", load, ["kiosk-e1", "kiosk-w1"])) == "written"
    east.write("return", east.return_row(ret("20261125000000000001", "kiosk-e1", True)))
    west.write("return", west.return_row(ret("20261125000000000001", "kiosk-w1", True)))
    west.write("return", west.return_row(ret("20261125000000000001", "kiosk-e1", True)))  # duplicate
    opts = master("relay-e1")
    assert count(opts, schema.jobs) == 1
    got = cache.get_jid(opts, "20261125000000000001")
    assert sorted(got) == ["kiosk-e1", "kiosk-w1"]
    assert got["kiosk-e1"]["master_id"] == "relay-e1" and got["kiosk-w1"]["master_id"] == "relay-w1"
    assert cache.get_load(opts, "20261125000000000001") == dict(load, Minions=["kiosk-e1", "kiosk-w1"])
    assert cache.job_minions_of(opts, "20261125000000000001") == ["kiosk-e1", "kiosk-w1"]


def test_values_are_stored_verbatim(master):
    opts = master("relay-e1")
    results = writer.JobResults.get(opts)
    nasty_id = "kiosk-'; DROP TABLE kiosk_returns; --\\"
    payload = {"text": "it's \"quoted\" \\ back\\slash ' OR 1=1; --", "bytes": "\u4e2d\u6587"}
    results.write("return", results.return_row(ret("20261125000000000002", nasty_id, payload)))
    got = cache.get_jid(opts, "20261125000000000002")
    assert got == {nasty_id: {"return": payload, "retcode": 0, "success": True, "master_id": "relay-e1"}}
    assert cache.get_fun(opts, "test.echo") == {nasty_id: "test.echo"}


def test_event_batch_in_one_write(master):
    opts = master("mom")
    results = writer.JobResults.get(opts)
    batch = [{"tag": f"kiosk/test/{i}", "data": {"i": i, "q": "'\\\""}} for i in range(500)]
    assert results.write("events", results.event_rows(batch)) == "written"
    assert count(opts, schema.events) == 500
    with results.engine.connect() as conn:
        stored = conn.execute(
            sa.select(schema.events.c.tag, schema.events.c.data).where(schema.events.c.tag == "kiosk/test/7")
        ).one()
    assert json.loads(stored.data) == {"i": 7, "q": "'\\\""}


def test_filters_and_cleanup(master):
    opts = dict(master("mom"), keep_jobs_seconds=3600, order_masters=True)  # only the owner deletes
    results = writer.JobResults.get(opts)
    results.write("load", results.load_item("20261125000000000010", {"fun": "test.ping"}, []))
    results.write("load", results.load_item("20261125000000000011", {"fun": "saltutil.find_job"}, []))
    assert [j["jid"] for j in cache.get_jids_filter(opts, 10)] == ["20261125000000000010"]
    assert len(cache.get_jids_filter(opts, 10, filter_find_job=False)) == 2
    with results.engine.begin() as conn:
        conn.execute(
            schema.jobs.update()
            .where(schema.jobs.c.jid == "20261125000000000010")
            .values(created_at=clock.utcnow().replace(year=2020))
        )
    assert cache.clean_old_jobs(opts) == 1
    assert list(cache.get_jids(opts)) == ["20261125000000000011"]


def test_recent_returns_of_one_minion_newest_first(master):
    from salt_kiosk.errors import KioskInputError

    opts = master("relay-e1")
    results = writer.JobResults.get(opts)
    for n, fun in enumerate(("test.ping", "state.apply", "kiosk.release")):
        results.write("return", results.return_row(ret(f"2026112500000000002{n}", "kiosk-e1", True, fun=fun)))
    failed = dict(ret("20261125000000000029", "kiosk-e1", "boom", fun="cmd.run"), retcode=1, success=False)
    results.write("return", results.return_row(failed))
    results.write("return", results.return_row(ret("20261125000000000030", "kiosk-e2", True)))
    with results.engine.begin() as conn:  # one return a minute, in jid order
        for minute, last in enumerate(("20", "21", "22", "29")):
            conn.execute(
                schema.returns.update()
                .where(schema.returns.c.jid == f"202611250000000000{last}")
                .values(alter_time=clock.utcnow().replace(year=2026, month=12, day=7, hour=8, minute=minute, second=0))
            )
    got = cache.recent(opts, "kiosk-e1", limit=3)
    assert [(r["jid"], r["fun"], r["success"], r["retcode"]) for r in got] == [
        ("20261125000000000029", "cmd.run", False, 1),
        ("20261125000000000022", "kiosk.release", True, 0),
        ("20261125000000000021", "state.apply", True, 0),
    ]
    assert got[0]["at"] == "2026-12-07T08:03:00Z" and got[0]["master_id"] == "relay-e1"
    assert len(cache.recent(opts, "kiosk-e1")) == 4 and cache.recent(opts, "kiosk-x") == []
    with pytest.raises(KioskInputError, match="limit 501 is out of range"):
        cache.recent(opts, "kiosk-e1", limit=501)
    with pytest.raises(KioskInputError, match="is not a valid minion id"):
        cache.recent(opts, "kiosk-e1\u202e")
