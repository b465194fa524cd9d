"""
A unit-split task whose database goes away while its units run: the outcomes
are kept and recorded once the database is back (one warning when it goes,
one when it returns); after the patience runs out the error is raised.

The outage is injected by wrapping the store: while ``down`` is set, opening a
connection raises the OperationalError a dead server gives. The same task runs
against a really killed MariaDB in tests/faults/test_db_down.py.
"""

import logging

import pytest
import sqlalchemy as sa

from salt_kiosk.db import schema
from salt_kiosk.jobs import tasks
from tests.unit.test_engine_outage import FlakyEngine
from tests.unit.test_scheduler import CSV


def flaky_store(kstore):
    """``kstore`` with its engine replaced by one that refuses connections while ``down``."""
    kstore.engine = FlakyEngine(kstore.engine)
    return kstore.engine


@pytest.fixture
def task(kstore, tmp_path):
    from salt_kiosk import inventory  # pylint: disable=import-outside-toplevel

    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    return tasks.create(kstore, "*", "test.ping", unit=1, timeout=5, concurrency=1)


def results(kstore, task_id):
    with kstore.connect() as conn:
        return sorted(
            (r.minion_id, r.status, r.jid)
            for r in conn.execute(sa.select(schema.task_results).where(schema.task_results.c.task_id == task_id))
        )


def test_outcomes_wait_for_the_database_and_are_recorded_once_it_is_back(kstore, task, monkeypatch, caplog):
    flaky = flaky_store(kstore)
    sleeps = []

    def run_unit(opts, minions, fun, arg, timeout):
        flaky.down = True  # the database dies while the unit runs
        return f"2026120500000000000{len(sleeps)}", dict.fromkeys(minions, ("success", 0, True))

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) % 3 == 0:
            flaky.down = False  # back after three tries

    monkeypatch.setattr(tasks, "run_unit", run_unit)
    monkeypatch.setattr(tasks, "_sleep", sleep)
    with caplog.at_level(logging.WARNING, logger="salt_kiosk.jobs.tasks"):
        summary = tasks.execute({}, kstore, task)
    assert summary["state"] == "done" and summary["counts"]["success"] == 2, summary
    rows = results(kstore, task)
    assert [(m, s) for m, s, _ in rows] == [("kiosk-e1", "success"), ("kiosk-w1", "success")]
    assert all(jid for _, _, jid in rows)
    assert sleeps[:3] == [1, 2, 4]
    lost = [r for r in caplog.records if "unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "is back" in r.getMessage()]
    assert len(lost) == 2 and len(back) == 2  # once per outage (one per unit), not once per try


def test_a_database_that_stays_away_raises_after_the_patience(kstore, task, monkeypatch):
    flaky = flaky_store(kstore)
    monkeypatch.setattr(tasks, "_sleep", lambda seconds: None)
    flaky.down = True
    with pytest.raises(sa.exc.OperationalError):
        tasks.retrying(kstore, "a unit", lambda conn: None, patience=30)
    # 1 + 2 + 4 + 8 + 10 + 10 = 35 s of waiting: seven tries, then the error.
    assert flaky.refused == 7
