"""
Nothing lost when MySQL blinks: a master with ``master_job_cache: kiosk_mysql``
writing to a private MariaDB server that the test stops during a job and
starts again. Every return must be in the database afterwards, none twice.
"""

import os
import threading
import time

import pytest
from pytestshellutils.utils import ports

from salt_kiosk import topology
from salt_kiosk.db import migrations, store
from salt_kiosk.jobs import cache, writer
from tests.mariadb_server import PrivateMariaDB

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    server = PrivateMariaDB(str(tmp_path_factory.mktemp("mariadb")))
    server.install()
    server.start()
    server.sql("CREATE DATABASE kiosk_outage")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def outage_master(salt_factories, mariadb):
    pub, ret = ports.get_unused_localhost_port(), ports.get_unused_localhost_port()
    overrides = dict(
        topology.mom("127.0.0.1", pub, ret, master_id="outage-master", auto_accept=True),
        order_masters=False,
        master_job_cache="kiosk_mysql",
        # The only master on this database: it owns (creates) the schema.
        kiosk_mysql={"db": mariadb.url, "schema_owner": True},
        loop_interval=2,  # the maintenance loop replays the spool (clean_old_jobs)
    )
    master = salt_factories.salt_master_daemon("outage-master", overrides=overrides)
    with master.started():
        minions = [
            master.salt_minion_daemon(f"outage-m{i}", overrides=topology.minion("127.0.0.1", ret, pub)) for i in (1, 2)
        ]
        for minion in minions:
            minion.start()
        try:
            yield master
        finally:
            for minion in minions:
                minion.terminate()


def rows(mariadb, sql):
    return mariadb.sql(sql.replace("{db}", "kiosk_outage"))


def test_returns_survive_a_database_outage(outage_master, mariadb):
    cli = outage_master.salt_cli(timeout=60)
    first = cli.run("test.ping", minion_tgt="outage-m*")
    assert first.returncode == 0 and len(first.data) == 2, first
    before = rows(mariadb, "SELECT jid, minion_id, master_id FROM {db}.kiosk_returns")
    assert len(before) == 2 and {r[2] for r in before} == {"outage-master"}

    result = {}
    job = threading.Thread(
        target=lambda: result.update(ret=cli.run("cmd.run", "sleep 4; echo done", minion_tgt="outage-m*"))
    )
    job.start()
    time.sleep(1.5)
    mariadb.stop()  # during the job: the returns arrive while MySQL is down
    job.join()
    assert result["ret"].data == {"outage-m1": "done", "outage-m2": "done"}, result["ret"]
    spool = os.path.join(outage_master.config["cachedir"], "kiosk_mysql_spool")
    assert len([n for n in os.listdir(spool) if n.endswith(".json")]) >= 2

    mariadb.start()
    deadline = time.monotonic() + 60
    while [n for n in os.listdir(spool) if n.endswith(".json")] and time.monotonic() < deadline:
        time.sleep(1)
    assert not [n for n in os.listdir(spool) if n.endswith(".json")], os.listdir(spool)
    after = rows(mariadb, "SELECT jid, minion_id, fun, ret FROM {db}.kiosk_returns WHERE fun = 'cmd.run'")
    assert sorted(r[1] for r in after) == ["outage-m1", "outage-m2"]  # every return, none twice
    assert all('"done"' in r[3] for r in after)
    jobs = rows(mariadb, "SELECT jid, fun FROM {db}.kiosk_jobs WHERE fun = 'cmd.run'")
    assert len(jobs) == 1 and jobs[0][0] == after[0][0]
    total = rows(mariadb, "SELECT COUNT(*), COUNT(DISTINCT jid, minion_id) FROM {db}.kiosk_returns")
    assert total[0][0] == total[0][1] == 4


def test_reads_take_fresh_connections_after_the_database_restarted(mariadb, tmp_path):
    """
    A long-lived process (the engine's LocalClient, a syndic) holds pooled
    connections; MariaDB restarts; the next read of a job's load must find
    the load, not report the job missing (Salt then takes every minion of the
    job for silent) nor open the circuit breaker.
    """
    engine = store.make_engine(mariadb.url)
    migrations.upgrade(engine)
    engine.dispose()
    opts = {
        "cachedir": str(tmp_path),
        "kiosk_mysql": {"db": mariadb.url, "master_id": "reader", "spool_dir": str(tmp_path / "spool")},
    }
    results = writer.JobResults.get(opts)
    jid = "20261205130000000001"
    try:
        assert results.write("load", results.load_item(jid, {"fun": "kiosk.wake", "tgt": "relay-e1"}, [])) == "written"
        assert cache.get_load(opts, jid)["fun"] == "kiosk.wake"  # the pool now holds live connections
        mariadb.kill()
        mariadb.start()
        assert cache.get_load(opts, jid)["fun"] == "kiosk.wake"
        assert not results.down()
        assert cache.get_jids(opts)[jid]["fun"] == "kiosk.wake"
    finally:
        writer.JobResults.dispose_all()
