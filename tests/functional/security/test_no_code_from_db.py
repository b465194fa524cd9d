"""
No code from the database (security issue 13, finding 3).

Every relay writes to the kiosk database, so nothing the schedule engine loads
from it may be executable. A real salt-master runs the ``kiosk_scheduler``
engine over a throwaway MariaDB database; the test stops it, writes a pickle
whose unpickling creates a marker file into every text and binary column of
every table of that database (one new row per table, plus the job rows already
stored, plus APScheduler's old pickled job table), starts the master again,
waits until the engine has ticked and re-planned, and finds no marker.
"""

import datetime
import json
import os
import pickle
import time
import uuid
import zoneinfo

import pytest
import sqlalchemy as sa
from pytestshellutils.utils import ports

from salt_kiosk import inventory, topology
from salt_kiosk.db import schema, store
from salt_kiosk.power import engine as scheduler
from salt_kiosk.power import rules
from tests.conftest import campus_config, fleet_inventory_csv

pytestmark = pytest.mark.fleet

UTC = datetime.timezone.utc
OLD_PICKLED_TABLE = "kiosk_apscheduler_jobs"

#: Columns the engine interprets when it plans: the poisoned row gets a value
#: the planner accepts there (a kiosk of a configured campus, a rule that
#: parses), so the test is about code from the database, not about bad data.
PLAUSIBLE = {
    ("kiosk_kiosks", "campus"): "east",
    ("kiosk_campuses", "timezone"): "UTC",
    ("kiosk_rules", "state"): "on",
    ("kiosk_rules", "target"): "*",
    ("kiosk_rules", "dates"): None,  # days carry the pickle instead
    ("kiosk_rules", "start_min"): 0,
    ("kiosk_rules", "end_min"): 1,
}


class Touch:
    """Unpickling this creates ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def utcnow():
    return datetime.datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def meta(engine):
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(schema.meta.c.key, schema.meta.c.value)).all())


def moment(value):
    return datetime.datetime.fromisoformat(value) if value else None


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def json_checked_columns(conn):
    """``{(table, column)}`` of MariaDB JSON columns (LONGTEXT with a json_valid check)."""
    rows = conn.execute(
        sa.text(
            "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE()"
        )
    ).all()
    found = set()
    for table, clause in rows:
        if clause.lower().startswith("json_valid("):
            found.add((table, clause[len("json_valid(") :].strip(")`")))
    return found


def poison_database(engine, marker):
    """
    Write the pickle into every text/binary column of every table: a new row
    per table, and the job rows already stored. Return ``{table: [poisoned
    columns]}``.
    """
    text = pickle.dumps(Touch(marker), protocol=0).decode("ascii")
    binary = pickle.dumps(Touch(marker), protocol=pickle.HIGHEST_PROTOCOL)
    now = utcnow()
    with engine.begin() as conn:
        if not sa.inspect(conn).has_table(OLD_PICKLED_TABLE):
            # APScheduler's SQLAlchemyJobStore layout, as releases before schema 9 had it.
            sa.Table(
                OLD_PICKLED_TABLE,
                sa.MetaData(),
                sa.Column("id", sa.Unicode(191), primary_key=True),
                sa.Column("next_run_time", sa.Float(25), index=True),
                sa.Column("job_state", sa.LargeBinary, nullable=False),
            ).create(conn)
    reflected = sa.MetaData()
    reflected.reflect(engine)
    poisoned, inserted = {}, {}
    with engine.begin() as conn:
        json_columns = json_checked_columns(conn)
        for table in reflected.sorted_tables:  # referenced tables first
            values = {}
            for column in table.columns:
                key = (table.name, column.name)
                try:
                    python_type = column.type.python_type
                except NotImplementedError:
                    python_type = None
                if key in PLAUSIBLE:
                    values[column.name] = PLAUSIBLE[key]
                    continue
                if column.foreign_keys:
                    (fk,) = column.foreign_keys
                    values[column.name] = inserted[fk.column.table.name][fk.column.name]
                    continue
                if column.primary_key and column.autoincrement is True and python_type is int:
                    continue
                if python_type is bytes:
                    values[column.name] = binary
                elif key in json_columns:
                    values[column.name] = json.dumps([text])
                elif python_type is str:
                    length = getattr(column.type, "length", None)
                    if length is None or length >= len(text):
                        values[column.name] = text
                    else:
                        values[column.name] = "poisoned"[:length]
                        continue
                elif python_type is datetime.datetime:
                    values[column.name] = now
                    continue
                elif python_type is datetime.date:
                    values[column.name] = now.date()
                    continue
                else:  # numbers and flags
                    values[column.name] = 0
                    continue
                poisoned.setdefault(table.name, []).append(column.name)
            result = conn.execute(table.insert().values(**values))
            row = dict(values)
            for column, value in zip(table.primary_key.columns, result.inserted_primary_key):
                row[column.name] = value
            inserted[table.name] = row
        # The jobs already stored, too: they are what the engine loads first.
        conn.execute(sa.text(f"UPDATE {OLD_PICKLED_TABLE} SET job_state = :b"), {"b": binary})
        if scheduler.JOBSTORE_TABLE in reflected.tables and scheduler.JOBSTORE_TABLE != OLD_PICKLED_TABLE:
            jobs = reflected.tables[scheduler.JOBSTORE_TABLE]
            text_columns = [c.name for c in jobs.columns if c.name in poisoned.get(jobs.name, []) and not c.primary_key]
            conn.execute(jobs.update().values(**dict.fromkeys(text_columns, text)))
    return poisoned


@pytest.fixture
def kiosk_db(mysql_db, tmp_path):
    """The throwaway database with the fleet's inventory and one rule on campus east."""
    # This process acts as the master of masters (the schema owner) to set the database up.
    opts = {"cachedir": str(tmp_path), "order_masters": True, "kiosk": {"db": mysql_db, "campuses": campus_config()}}
    kstore = store.open_store(opts)
    csv = tmp_path / "inventory.csv"
    csv.write_text(fleet_inventory_csv())
    inventory.import_csv(kstore, str(csv))
    # A window hours away: transition jobs are stored, none of them runs during the test.
    local = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")) + datetime.timedelta(hours=6)
    rules.add(
        kstore,
        "nocode-window",
        state="on",
        days="daily",
        start=f"{local:%H:%M}",
        end=f"{local + datetime.timedelta(hours=1):%H:%M}",
        target="campus:east",
    )
    return kstore


@pytest.fixture
def marker():
    # Short: the protocol-0 pickle naming it must fit 64-character columns.
    path = f"/tmp/kpm-{uuid.uuid4().hex[:8]}"
    yield path
    if os.path.exists(path):
        os.unlink(path)


def test_engine_loads_no_code_from_the_database(salt_factories, mysql_db, kiosk_db, marker):
    pub, ret = ports.get_unused_localhost_port(), ports.get_unused_localhost_port()
    overrides = dict(
        topology.mom("127.0.0.1", pub, ret, master_id="nocode-master"),
        kiosk={"db": mysql_db, "campuses": campus_config()},
        engines=[{"kiosk_scheduler": {"tick": 1, "grace": 120, "replan_interval": 3600}}],
    )
    master = salt_factories.salt_master_daemon(f"nocode-{uuid.uuid4().hex[:6]}", overrides=overrides)
    engine = kiosk_db.engine

    def power_jobs():
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(scheduler.JOBSTORE_TABLE):
                return []
            return conn.execute(sa.text(f"SELECT id FROM {scheduler.JOBSTORE_TABLE}")).scalars().all()

    master.start()
    try:
        # The engine has planned: transition jobs and its heartbeat are stored.
        wait_for(
            lambda: (
                meta(engine).get("engine_last_plan") and any(j.startswith(scheduler.POWER_PREFIX) for j in power_jobs())
            ),
            90,
            "the first plan",
        )
        planned = sorted(j for j in power_jobs() if j.startswith(scheduler.POWER_PREFIX))
        master.terminate()

        poisoned = poison_database(engine, marker)
        assert OLD_PICKLED_TABLE in poisoned and "kiosk_meta" in poisoned and "kiosk_kiosks" in poisoned
        restarted = utcnow()
        master.start()

        def engine_ran_again():
            if os.path.exists(marker):
                return True  # no need to wait any longer
            values = meta(engine)
            started, plan, tick = (
                moment(values.get(k)) for k in ("engine_started_at", "engine_last_plan", "engine_last_tick")
            )
            # Ticked by APScheduler (a tick job loaded from the store) after the start's own tick.
            return (
                started
                and started >= restarted
                and plan
                and plan >= started
                and tick
                and tick >= started + datetime.timedelta(seconds=2)
            )

        wait_for(engine_ran_again, 90, "the engine to tick and re-plan after the restart")
        assert not os.path.exists(marker), (
            f"unpickled from the database: {marker} was created by the engine (poisoned: {poisoned})"
        )
        # The engine did its work: the same transitions are planned again, every
        # stored job is a plain-data document, and the runner reads them.
        assert sorted(j for j in power_jobs() if j.startswith(scheduler.POWER_PREFIX)) == planned
        with engine.connect() as conn:
            for row in conn.execute(sa.select(schema.scheduler_jobs)):
                scheduler.decode_document(row.id, row.job, key="kiosk")
        status = master.salt_run_cli(timeout=60).run("kiosk_power.engine_status")
        assert status.returncode == 0, status
        assert any(t["rule"] == "nocode-window" for t in status.data["next_transitions"]), status.data
        assert status.data["seconds_since_tick"] < 30
    finally:
        master.terminate()
    assert not os.path.exists(marker)
