"""
Job results and unit-split jobs on the real fleet: both syndic masters write
returns into MariaDB through the kiosk_mysql returner (``master_job_cache``),
and ``kiosk_jobs`` runs units with hard per-unit timeouts.
"""

import json
import time

import pytest

pytestmark = pytest.mark.fleet

KIOSKS = ["kiosk-e1", "kiosk-e2", "kiosk-w1", "kiosk-w2"]


def run(fleet, *args, timeout=180):
    ret = fleet.salt_run_cli(timeout=timeout).run(*args)
    assert ret.returncode == 0, ret
    return ret


def wait_for_progress(fleet, jid, returned, deadline=30):
    end = time.monotonic() + deadline
    while True:
        prog = run(fleet, "kiosk_jobs.progress", jid).data
        if prog["returned"] >= returned or time.monotonic() > end:
            return prog
        time.sleep(1)


def test_job_over_all_kiosks_lands_with_both_master_ids(fleet, fleet_inventory):
    nasty = "it's \"quoted\" \\ back\\slash'; DROP TABLE kiosk_returns; --"
    ret = run(fleet, "kiosk_jobs.run", "*", "test.echo", f"arg={json.dumps([nasty])}", "unit=4", "wait=True")
    task = ret.data
    assert {r["return"] for r in task["results"].values()} == {nasty}, task
    assert task["counts"]["success"] == 4 and task["total"] == 4 and task["units"] == 1, task
    assert task["success_rate"] == 1.0 and task["state"] == "done"
    jid = task["results"]["kiosk-e1"]["jid"]
    prog = wait_for_progress(fleet, jid, 4)
    assert sorted(prog["success"]) == KIOSKS, prog
    assert prog["masters"] == ["relay-e1", "relay-w1"]
    assert prog["expected"] == 4 and prog["waiting"] == [] and prog["progress"] == 1.0
    # Stored verbatim in MariaDB by the syndic masters' returner.
    from salt_kiosk.jobs import cache, writer

    opts = {"cachedir": "/nonexistent", "kiosk_mysql": {"db": fleet.mom.config["kiosk"]["db"], "master_id": "test"}}
    stored = cache.get_jid(opts, jid)
    assert {m: r["return"] for m, r in stored.items()} == {m: task["results"][m]["return"] for m in KIOSKS}
    writer.JobResults.dispose_all()
    # The kiosk's recent jobs (the console's kiosk page), newest first.
    recent = run(fleet, "kiosk_jobs.recent", "kiosk-e1", "limit=5").data
    assert recent[0]["jid"] == jid and recent[0]["fun"] == "test.echo" and recent[0]["success"] is True
    assert recent[0]["master_id"] == "relay-e1" and len(recent) <= 5


def test_unit_with_a_stopped_minion_ends_within_its_timeout(fleet, fleet_inventory):
    stopped = fleet.kiosks["kiosk-w2"]
    stopped.terminate()
    try:
        started = time.monotonic()
        ret = run(
            fleet,
            "kiosk_jobs.run",
            "kiosk-e1,kiosk-e2,kiosk-w1,kiosk-w2,ghost-kiosk",
            "test.ping",
            "unit=2",
            "timeout=6",
            "concurrency=3",
            "allow_unknown=True",
            "wait=True",
        )
        elapsed = time.monotonic() - started
    finally:
        stopped.start()
    task = ret.data
    results = task["results"]
    assert results["kiosk-w2"]["status"] == "timeout", results
    assert results["ghost-kiosk"]["status"] == "absent", results
    for kiosk in ("kiosk-e1", "kiosk-e2", "kiosk-w1"):
        assert results[kiosk]["status"] == "success", results
    assert task["units"] == 3 and task["counts"] == {"success": 3, "failed": 0, "timeout": 1, "absent": 1, "pending": 0}
    # 3 units, 3 in flight, 6 s each at most: the salt-run call (with its own start-up) stays well under 2 units' worth.
    assert elapsed < 6 + 10, elapsed
    by_ip = run(fleet, "kiosk_jobs.status", f"ip={results['kiosk-e1']['ip']}").data
    assert by_ip["kiosk-e1"][0]["task"] == task["task"] and by_ip["kiosk-e1"][0]["status"] == "success"
    by_minion = run(fleet, "kiosk_jobs.status", "minions=[kiosk-w2]").data
    assert by_minion["kiosk-w2"][0]["status"] == "timeout"


def test_async_task_and_failures(fleet, fleet_inventory):
    ret = run(fleet, "kiosk_jobs.run", "campus:east", "test.arg", "arg=[one, 2]", "unit=1")
    task_id = ret.data["task"]
    deadline = time.monotonic() + 60
    while True:
        status = run(fleet, "kiosk_jobs.status", task_id).data
        if status["state"] == "done" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status["state"] == "done", status
    assert status["units"] == 2 and status["counts"]["success"] == 2 and status["success_rate"] == 1.0, status
    assert all(r["return"]["args"] == ["one", 2] for r in status["results"].values())
    # A command exiting 3 sets the job's retcode: failed, with the return kept.
    failing = run(fleet, "kiosk_jobs.run", "campus:east", "cmd.retcode", "arg=[exit 3]", "wait=True").data
    assert failing["counts"]["failed"] == 2 and failing["success_rate"] == 0.0, failing
    assert {r["return"] for r in failing["results"].values()} == {3}
    assert {r["retcode"] for r in failing["results"].values()} == {3}


@pytest.mark.parametrize(
    "args, message",
    [
        (("kiosk_jobs.run", "*", "test.ping", "unit=0"), "unit 0 is out of range"),
        (("kiosk_jobs.run", "*", "test.ping", "timeout=0"), "timeout 0 is out of range"),
        (("kiosk_jobs.run", "campus:nowhere", "test.ping"), "matches no kiosk"),
        (("kiosk_jobs.run", "kiosk-e1,ghost-kiosk", "test.ping"), "not kiosks of the inventory: 'ghost-kiosk'"),
        (("kiosk_jobs.status", "no-such-task"), "task 'no-such-task' is unknown"),
        (("kiosk_jobs.progress", "20000101000000000000"), "is unknown to the kiosk_mysql job store"),
        (("kiosk_jobs.recent", "kiosk-e1", "limit=0"), "limit 0 is out of range (accepted: an integer 1-500)"),
    ],
)
def test_bad_input(fleet, fleet_inventory, args, message):
    ret = fleet.salt_run_cli().run(*args)
    assert message in ret.stdout, ret


def test_minion_side_return_through_the_returner(fleet):
    """``--return kiosk_mysql``: the minion writes its own return (it has kiosk:db)."""
    marker = "written by the minion's own returner"
    ret = fleet.salt_cli().run("test.echo", marker, "--return", "kiosk_mysql", minion_tgt="central")
    assert ret.returncode == 0 and ret.data == marker, ret
    from salt_kiosk.jobs import writer

    opts = {"cachedir": "/nonexistent", "kiosk_mysql": {"db": fleet.mom.config["kiosk"]["db"], "master_id": "test"}}
    try:
        results = writer.JobResults.get(opts)
        deadline = time.monotonic() + 30
        while True:
            with results.engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT minion_id, master_id, ret FROM kiosk_returns WHERE ret LIKE %s", (f"%{marker}%",)
                ).all()
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert [(r[0], r[1]) for r in rows] == [("central", "central")], rows
        assert json.loads(rows[0][2])["return"] == marker
    finally:
        writer.JobResults.dispose_all()
