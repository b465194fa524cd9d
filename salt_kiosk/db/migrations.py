"""
The versioned schema of the kiosk database.

:data:`MIGRATIONS` lists every step in order; :func:`upgrade` applies the ones a
database has not seen yet and records each in ``kiosk_schema``. Running it again
changes nothing, and two processes upgrading the same MySQL database at once
serialise on a named lock. Only the schema owner (the master of masters;
``kiosk:schema_owner``) ever migrates: relays, minions and every other account
only check the version (:func:`ensure_schema`).
"""

import logging

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from salt_kiosk import clock
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskSchemaError, KioskStoreError

log = logging.getLogger(__name__)

#: APScheduler's SQLAlchemy job store table of releases before schema 9: its
#: rows are pickles, so it is dropped without being read.
PICKLED_JOBS_TABLE = "kiosk_apscheduler_jobs"


def _create(*tables):
    def step(conn):
        for table in tables:
            table.create(conn, checkfirst=True)

    return step


def _plain_scheduler_jobs(conn):
    schema.scheduler_jobs.create(conn, checkfirst=True)
    # Never converted (that would mean unpickling): the engine re-plans its
    # transitions from the rules when it starts.
    sa.Table(PICKLED_JOBS_TABLE, sa.MetaData()).drop(conn, checkfirst=True)


def _engine_functions_moved(conn):
    # The engine's job functions moved from salt_kiosk.scheduler to
    # salt_kiosk.power.engine; a stored job names its function by reference.
    conn.execute(
        schema.scheduler_jobs.update().values(
            job=sa.func.replace(schema.scheduler_jobs.c.job, '"salt_kiosk.scheduler:', '"salt_kiosk.power.engine:')
        )
    )


def _add_columns(table, *names):
    """
    A step adding the columns ``names`` of ``table`` (as declared in
    :mod:`salt_kiosk.db.schema`) to a table created before they existed; a
    column already there is left alone (a database created by an older step
    from the current declaration has them, and MySQL commits each
    ``ALTER TABLE`` on its own, so a step cut short is finished on the next run).
    """

    def step(conn):
        have = {column["name"] for column in sa.inspect(conn).get_columns(table.name)}
        preparer = conn.dialect.identifier_preparer
        for name in names:
            if name in have:
                continue
            column = table.c[name]
            if not column.nullable:
                raise KioskSchemaError(f"column {table.name}.{name} must be nullable to be added to existing rows")
            conn.execute(
                sa.text(
                    f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {preparer.format_column(column)} "
                    f"{column.type.compile(dialect=conn.dialect)} NULL"
                )
            )

    return step


def _add_indexes(table, *names):
    """A step creating the indexes ``names`` of ``table`` that are missing."""

    def step(conn):
        have = {index["name"] for index in sa.inspect(conn).get_indexes(table.name)}
        for index in table.indexes:
            if index.name in names and index.name not in have:
                index.create(conn)

    return step


def _events_tag_prefix(conn):
    # One ALTER: the index is never missing, and a step cut short before it
    # was recorded is simply done again. SQLite indexes whole values.
    if conn.dialect.name == "mysql":
        conn.exec_driver_sql(
            f"ALTER TABLE {schema.events.name} DROP INDEX ix_kiosk_events_tag, "
            f"ADD INDEX ix_kiosk_events_tag (tag({schema.EVENT_TAG_PREFIX}))"
        )


def _steps(*steps):
    def step(conn):
        for one in steps:
            one(conn)

    return step


#: (version, description, step(connection)) in the order they are applied.
MIGRATIONS = (
    (1, "campuses and kiosks", _create(schema.campuses, schema.kiosks)),
    (2, "power events", _create(schema.power_events, schema.power_event_kiosks)),
    (3, "power rules, schedule runs, engine state", _create(schema.meta, schema.rules, schema.schedule_runs)),
    (4, "verification sweep results", _create(schema.sweep_results)),
    (
        5,
        "releases, staging and installed versions",
        _create(schema.releases, schema.release_stages, schema.release_kiosks),
    ),
    (
        6,
        "job results: jobs, job minions, returns, events",
        _create(schema.jobs, schema.job_minions, schema.returns, schema.events),
    ),
    (7, "unit-split tasks and their per-minion results", _create(schema.tasks, schema.task_results)),
    (8, "assets collected from grains and their change history", _create(schema.assets, schema.asset_history)),
    (9, "scheduler jobs as plain JSON data; the pickled APScheduler job table dropped", _plain_scheduler_jobs),
    (10, "scheduler jobs name their functions in salt_kiosk.power.engine", _engine_functions_moved),
    (11, "schedule engine leadership leases", _create(schema.engine_leases)),
    (
        12,
        "schedule runs record their holder and job id (settled after a crash)",
        _steps(
            _add_columns(schema.schedule_runs, "holder", "jid"),
            _add_indexes(schema.schedule_runs, "ix_kiosk_schedule_runs_status"),
        ),
    ),
    (
        13,
        "releases record their health settings, kiosks a rollback by the health gate",
        _steps(_add_columns(schema.releases, "health"), _add_columns(schema.release_kiosks, "rolled_back")),
    ),
    (14, "release rollouts in waves and their kiosks", _create(schema.rollouts, schema.rollout_kiosks)),
    (15, "the events' tag index on the tag's first 32 characters (MySQL)", _events_tag_prefix),
)

SCHEMA_VERSION = MIGRATIONS[-1][0]

_LOCK_NAME = "salt_kiosk_schema"


def current_version(conn):
    """
    Return the schema version recorded in the database (0 for an empty one).
    """
    if not sa.inspect(conn).has_table(schema.schema_table.name):
        return 0
    return conn.execute(sa.select(sa.func.max(schema.schema_table.c.version))).scalar() or 0


def upgrade(engine):
    """
    Bring the schema of ``engine`` to :data:`SCHEMA_VERSION`; return the list of
    versions applied now (empty when it was already current).
    """
    applied = []
    with engine.connect() as conn:
        mysql = conn.dialect.name in ("mysql", "mariadb")
        if mysql:
            got = conn.execute(sa.text("SELECT GET_LOCK(:n, 60)"), {"n": _LOCK_NAME}).scalar()
            if got != 1:
                raise KioskStoreError("timed out waiting for another process upgrading the kiosk schema")
        try:
            schema.schema_table.create(conn, checkfirst=True)
            conn.commit()
            have = current_version(conn)
            for version, description, step in MIGRATIONS:
                if version <= have:
                    continue
                step(conn)
                try:
                    conn.execute(
                        schema.schema_table.insert().values(
                            version=version, description=description, applied_at=clock.utcnow()
                        )
                    )
                    conn.commit()
                except IntegrityError:
                    # Another process (SQLite has no named lock) recorded it first.
                    conn.rollback()
                    continue
                log.info("kiosk schema upgraded to version %s (%s)", version, description)
                applied.append(version)
        finally:
            if mysql:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": _LOCK_NAME})
                conn.commit()
    return applied


def ensure_schema(engine, migrate):
    """
    Make sure the schema of ``engine`` is at least :data:`SCHEMA_VERSION`.

    ``migrate`` (the schema owner, see :func:`salt_kiosk.config.schema_owner`):
    apply what is missing and return the versions applied. Otherwise only
    read the version: a database that is behind raises
    :class:`~salt_kiosk.errors.KioskSchemaError` saying to run the migration
    on the master of masters; nothing is created or altered.
    """
    if migrate:
        return upgrade(engine)
    with engine.connect() as conn:
        have = current_version(conn)
    if have < SCHEMA_VERSION:
        raise KioskSchemaError(
            f"kiosk database {engine.url.render_as_string(hide_password=True)} has schema version {have}, "
            f"this salt-kiosk needs {SCHEMA_VERSION}: run the migration on the master of masters "
            "(salt-call state.single kiosk_store.schema_current kiosk, or any kiosk runner there); "
            "this process never migrates (it is not the schema owner: kiosk:schema_owner)"
        )
    return []
