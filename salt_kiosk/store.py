"""
The kiosk database: one schema, SQLAlchemy Core, MySQL/MariaDB through PyMySQL
or an embedded SQLite file.

The schema is versioned. :data:`MIGRATIONS` lists every step in order;
:func:`upgrade` applies the ones a database has not seen yet and records each in
``kiosk_schema``. Running it again changes nothing, and two processes upgrading
the same MySQL database at once serialise on a named lock. Only the schema
owner (the master of masters; ``kiosk:schema_owner``) ever migrates: relays,
minions and every other account only check the version (:func:`ensure_schema`).

All tables carry a ``kiosk_`` prefix so that they can share a database with the
job returner's tables.
"""

import datetime
import logging
import os
import threading

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from salt_kiosk import config
from salt_kiosk.errors import KioskSchemaError, KioskStoreError

log = logging.getLogger(__name__)

metadata = sa.MetaData()

# Keys compare exactly (E01 and e01 are two kiosks) on MySQL as on SQLite.
_MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

schema_table = sa.Table(
    "kiosk_schema",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(255), nullable=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
    **_MYSQL_TABLE,
)

campuses = sa.Table(
    "kiosk_campuses",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("broadcast", sa.String(45), nullable=True),
    sa.Column("relays", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    **_MYSQL_TABLE,
)

kiosks = sa.Table(
    "kiosk_kiosks",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("minion_id", sa.String(255), nullable=False, unique=True),
    sa.Column("campus", sa.String(64), nullable=False, index=True),
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("ip", sa.String(45), nullable=True),
    sa.Column("mac", sa.String(17), nullable=True),
    sa.Column("vnc_port", sa.Integer, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    **_MYSQL_TABLE,
)


power_events = sa.Table(
    "kiosk_power_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("username", sa.String(128), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("rule", sa.String(128), nullable=True),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("ok_count", sa.Integer, nullable=False),
    sa.Column("failed_count", sa.Integer, nullable=False),
    **_MYSQL_TABLE,
)

power_event_kiosks = sa.Table(
    "kiosk_power_event_kiosks",
    metadata,
    sa.Column("event_id", sa.Integer, sa.ForeignKey("kiosk_power_events.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("campus", sa.String(64), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("acked", sa.JSON, nullable=False),
    sa.Column("silent", sa.JSON, nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    **_MYSQL_TABLE,
)


meta = sa.Table(
    "kiosk_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=True),
    **_MYSQL_TABLE,
)

rules = sa.Table(
    "kiosk_rules",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("state", sa.String(3), nullable=False),
    sa.Column("days", sa.JSON, nullable=True),
    sa.Column("dates", sa.JSON, nullable=True),
    sa.Column("start_min", sa.Integer, nullable=False),
    sa.Column("end_min", sa.Integer, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=True),
    sa.Column("valid_until", sa.Date, nullable=True),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_revision", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    **_MYSQL_TABLE,
)

schedule_runs = sa.Table(
    "kiosk_schedule_runs",
    metadata,
    sa.Column("at", sa.DateTime, primary_key=True),
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("state", sa.String(3), nullable=False),
    sa.Column("rule", sa.String(128), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("event_id", sa.Integer, nullable=True),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    **_MYSQL_TABLE,
)


sweep_results = sa.Table(
    "kiosk_sweep_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Integer, nullable=True, index=True),
    sa.Column("sweep", sa.Integer, nullable=False),
    sa.Column("minion_id", sa.String(255), nullable=False, index=True),
    sa.Column("expected", sa.String(3), nullable=False),
    sa.Column("observed", sa.String(8), nullable=False),
    sa.Column("network", sa.String(8), nullable=False),
    sa.Column("salt", sa.String(8), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("final", sa.Boolean, nullable=False),
    sa.Column("checked_at", sa.DateTime, nullable=False),
    **_MYSQL_TABLE,
)


releases = sa.Table(
    "kiosk_releases",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("md5", sa.String(32), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("rollback_of", sa.String(64), nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    **_MYSQL_TABLE,
)

release_stages = sa.Table(
    "kiosk_release_stages",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("relay", sa.String(255), primary_key=True),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("staged_at", sa.DateTime, nullable=False),
    **_MYSQL_TABLE,
)

release_kiosks = sa.Table(
    "kiosk_release_kiosks",
    metadata,
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("version", sa.String(64), nullable=True),
    sa.Column("md5", sa.String(32), nullable=True),
    sa.Column("attempted", sa.String(64), nullable=True),
    sa.Column("ok", sa.Boolean, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("seen_at", sa.DateTime, nullable=False),
    **_MYSQL_TABLE,
)

# The schedule engine's APScheduler jobs, one JSON document of plain data per
# job (see salt_kiosk.scheduler.PlainJobStore); never a pickle.
scheduler_jobs = sa.Table(
    "kiosk_scheduler_jobs",
    metadata,
    sa.Column("id", sa.String(191), primary_key=True),
    sa.Column("next_run_time", sa.Double, nullable=True, index=True),
    sa.Column("job", sa.Text().with_variant(mysql_dialect.LONGTEXT(), "mysql", "mariadb"), nullable=False),
    **_MYSQL_TABLE,
)

#: APScheduler's SQLAlchemy job store table of releases before schema 9: its
#: rows are pickles, so it is dropped without being read.
_PICKLED_JOBS_TABLE = "kiosk_apscheduler_jobs"


def _create(*tables):
    def step(conn):
        for table in tables:
            table.create(conn, checkfirst=True)

    return step


def _create_job_tables(conn):
    from salt_kiosk import jobresults  # pylint: disable=import-outside-toplevel

    _create(*jobresults.TABLES)(conn)


def _create_task_tables(conn):
    from salt_kiosk import tasks  # pylint: disable=import-outside-toplevel

    _create(*tasks.TABLES)(conn)


def _create_asset_tables(conn):
    from salt_kiosk import assets  # pylint: disable=import-outside-toplevel

    _create(*assets.TABLES)(conn)


def _plain_scheduler_jobs(conn):
    scheduler_jobs.create(conn, checkfirst=True)
    # Never converted (that would mean unpickling): the engine re-plans its
    # transitions from the rules when it starts.
    sa.Table(_PICKLED_JOBS_TABLE, sa.MetaData()).drop(conn, checkfirst=True)


#: (version, description, step(connection)) in the order they are applied.
MIGRATIONS = (
    (1, "campuses and kiosks", _create(campuses, kiosks)),
    (2, "power events", _create(power_events, power_event_kiosks)),
    (3, "power rules, schedule runs, engine state", _create(meta, rules, schedule_runs)),
    (4, "verification sweep results", _create(sweep_results)),
    (5, "releases, staging and installed versions", _create(releases, release_stages, release_kiosks)),
    (6, "job results: jobs, job minions, returns, events", _create_job_tables),
    (7, "unit-split tasks and their per-minion results", _create_task_tables),
    (8, "assets collected from grains and their change history", _create_asset_tables),
    (9, "scheduler jobs as plain JSON data; the pickled APScheduler job table dropped", _plain_scheduler_jobs),
)

SCHEMA_VERSION = MIGRATIONS[-1][0]

_LOCK_NAME = "salt_kiosk_schema"


def utcnow():
    """Naive UTC timestamp as stored in the database."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)


def current_version(conn):
    """
    Return the schema version recorded in the database (0 for an empty one).
    """
    if not sa.inspect(conn).has_table(schema_table.name):
        return 0
    return conn.execute(sa.select(sa.func.max(schema_table.c.version))).scalar() or 0


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
            schema_table.create(conn, checkfirst=True)
            conn.commit()
            have = current_version(conn)
            for version, description, step in MIGRATIONS:
                if version <= have:
                    continue
                step(conn)
                try:
                    conn.execute(
                        schema_table.insert().values(
                            version=version, description=description, applied_at=utcnow()
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


def _sqlite_pragmas(dbapi_conn, _record):
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url):
    """
    Create an engine for ``url`` with pooling suited to long-running daemons:
    connections are checked before use and recycled, so a restarted MySQL is
    picked up again without restarting Salt.
    """
    url = sa.engine.make_url(url)
    if url.get_backend_name() == "sqlite":
        if url.database:
            os.makedirs(os.path.dirname(os.path.abspath(url.database)), exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_recycle=3600, pool_size=5, max_overflow=10)


class Store:
    """
    A handle on the kiosk database: the engine plus the campuses configured in
    ``kiosk:campuses``, mirrored into ``kiosk_campuses`` when opened.
    """

    def __init__(self, engine, campuses_config=None):
        self.engine = engine
        self.campuses_config = campuses_config or {}

    @property
    def url(self):
        """The database URL with the password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def begin(self):
        """Context manager: a connection inside one transaction."""
        return self.engine.begin()

    def connect(self):
        """Context manager: a connection (autobegin, explicit commit)."""
        return self.engine.connect()

    def sync_campuses(self):
        """
        Upsert the configured campuses into ``kiosk_campuses``. Campuses no longer
        configured stay in the table (kiosks may still refer to them).
        """
        if not self.campuses_config:
            return
        now = utcnow()
        with self.begin() as conn:
            existing = {
                row.name: row for row in conn.execute(sa.select(campuses))
            }
            for name, spec in self.campuses_config.items():
                values = {
                    "timezone": spec["timezone"],
                    "broadcast": spec["broadcast"],
                    "relays": spec["relays"],
                }
                old = existing.get(name)
                if old is None:
                    conn.execute(campuses.insert().values(name=name, updated_at=now, **values))
                elif (old.timezone, old.broadcast, list(old.relays or [])) != (
                    values["timezone"],
                    values["broadcast"],
                    values["relays"],
                ):
                    conn.execute(
                        campuses.update().where(campuses.c.name == name).values(updated_at=now, **values)
                    )

    def campus_rows(self):
        """Return ``{name: {name, timezone, broadcast, relays}}`` from the database."""
        with self.connect() as conn:
            return {
                row.name: {
                    "name": row.name,
                    "timezone": row.timezone,
                    "broadcast": row.broadcast,
                    "relays": list(row.relays or []),
                }
                for row in conn.execute(sa.select(campuses).order_by(campuses.c.name))
            }


_engines = {}
_lock = threading.Lock()


def open_store(opts):
    """
    Open the kiosk database configured in ``opts`` (master or minion options)
    and mirror the configured campuses. On first use in this process the
    schema owner (the master of masters, see
    :func:`salt_kiosk.config.schema_owner`) creates or upgrades the schema;
    every other process only checks its version and refuses a database that
    is behind. Engines are cached per URL.
    """
    url = config.db_url(opts)
    campus_config = config.campuses(opts)
    owner = config.schema_owner(opts, url)
    key = url.render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(key)
        try:
            if engine is None:
                engine = make_engine(url)
                try:
                    ensure_schema(engine, migrate=owner)
                except KioskSchemaError:
                    engine.dispose()
                    raise
                _engines[key] = engine
            store = Store(engine, campus_config)
            store.sync_campuses()
        except SQLAlchemyError as exc:
            raise KioskStoreError(
                f"kiosk database {url.render_as_string(hide_password=True)} is unavailable: "
                f"{exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}"
            ) from None
    return store


def dispose_all():
    """Close every cached engine (tests, process shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
