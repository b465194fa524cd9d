"""
The database dies: the fault fleet's private MariaDB server is SIGKILLed while
a unit-split job runs, and started again. The units keep running, their
outcomes are recorded once the database is back, the relays' returners spool
the returns they could not write and replay them, and nothing is lost or
doubled.
"""

import threading
import time

import pytest

from tests.faults.conftest import KIOSKS, record_figure

pytestmark = pytest.mark.fleet

#: How long the database stays dead.
OUTAGE = 8


def test_a_unit_split_job_survives_the_database_dying(campus):
    cli = campus.mom.salt_cli(timeout=30)
    run = campus.mom.salt_run_cli(timeout=240)
    deadline = time.monotonic() + 120
    while cli.run("test.ping", minion_tgt="kiosk-*").data != dict.fromkeys(KIOSKS, True):
        assert time.monotonic() < deadline, "the kiosks do not answer"
        time.sleep(1)

    result = {}
    job = threading.Thread(
        target=lambda: result.update(
            ret=run.run(
                "kiosk_jobs.run",
                "campus:east",
                "test.sleep",
                "[3]",
                "unit=1",
                "concurrency=1",
                "timeout=60",
                "wait=True",
            )
        )
    )
    before = {row[0] for row in campus.sql("SELECT task_id FROM {db}.kiosk_tasks")}
    job.start()
    # Kill the database once the task is recorded and its units are running
    # (salt-run may take seconds to start on a loaded machine).
    deadline = time.monotonic() + 120
    while not [
        row
        for row in campus.sql("SELECT task_id, state FROM {db}.kiosk_tasks")
        if row[0] not in before and row[1] == "running"
    ]:
        assert time.monotonic() < deadline and job.is_alive(), result
        time.sleep(0.1)
    time.sleep(1)  # the first unit is published
    campus.mariadb.kill()
    killed = time.monotonic()
    time.sleep(OUTAGE)
    campus.mariadb.start()
    print(f"MariaDB was down for {time.monotonic() - killed:.1f} s")
    job.join(timeout=240)
    ret = result["ret"]
    assert ret.returncode == 0, ret
    assert ret.data["state"] == "done" and ret.data["counts"]["success"] == len(KIOSKS), ret.data
    jids = sorted({entry["jid"] for entry in ret.data["results"].values()})
    assert len(jids) == len(KIOSKS) and all(jids), ret.data  # one unit per kiosk

    # Any write that reaches the database replays what a relay spooled.
    assert cli.run("test.echo", "after-the-outage", minion_tgt="*").returncode == 0
    rows = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = campus.sql(
            "SELECT jid, minion_id FROM {db}.kiosk_returns WHERE jid IN (%s)" % ", ".join(f"'{j}'" for j in jids)
        )
        if len(rows) >= len(KIOSKS):
            break
        time.sleep(1)
    stored = sorted(minion for _jid, minion in rows)
    record_figure("returns_lost", len(KIOSKS) - len(set(stored)))
    assert stored == sorted(KIOSKS), rows
    doubles = campus.sql(
        "SELECT jid, minion_id, COUNT(*) FROM {db}.kiosk_returns GROUP BY jid, minion_id HAVING COUNT(*) > 1"
    )
    record_figure("returns_doubled", len(doubles))
    assert list(doubles) == []
