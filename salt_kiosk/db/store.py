"""
The kiosk database handle: SQLAlchemy Core engines for MySQL/MariaDB (through
PyMySQL) or an embedded SQLite file, and the ``kiosk:db`` settings that name it.

Configuration (the ``kiosk:`` section of the master/minion config or pillar):

``db``
    Where the kiosk database lives. Either an SQLAlchemy URL string such as
    ``mysql+pymysql://kiosk:SECRET@db.example/kiosk`` or a mapping with
    ``host``, ``port`` (3306), ``user``, ``password`` or ``password_file`` (a file
    holding the password, so the secret stays out of the config), ``database``
    and ``driver`` (``mysql+pymysql``). Default: an embedded SQLite file
    ``<cachedir>/kiosk/kiosk.sqlite3`` (single-box trials, the demo).

``schema_owner``
    ``true`` where this process may create and upgrade the kiosk schema (see
    :mod:`salt_kiosk.db.migrations`). Default: true on the master of masters
    (``order_masters: True``) and for the embedded SQLite store, false
    everywhere else.

The tables are in :mod:`salt_kiosk.db.schema`.
"""

import logging
import os
import threading

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from salt_kiosk import clock, config
from salt_kiosk.db import migrations, schema
from salt_kiosk.errors import KioskInputError, KioskSchemaError, KioskStoreError

log = logging.getLogger(__name__)


def sqlite_path(opts):
    """
    Path of the embedded SQLite database under the daemon's cachedir.
    """
    return os.path.join(opts["cachedir"], "kiosk", "kiosk.sqlite3")


def schema_owner(opts, url=None):
    """
    True when this process may create and upgrade the kiosk schema:
    ``kiosk:schema_owner`` when set, otherwise the master of masters
    (``order_masters: True``) and the embedded SQLite store. Relay masters,
    minions and salt-call never migrate by default.
    """
    section = (opts or {}).get("kiosk") or {}
    if "schema_owner" in section:
        value = section["schema_owner"]
        if not isinstance(value, bool):
            raise KioskInputError(f"kiosk:schema_owner {value!r} is not a boolean (accepted: true or false)")
        return value
    if url is not None and url.get_backend_name() == "sqlite":
        return True
    return bool((opts or {}).get("order_masters"))


def db_url(opts):
    """
    Return the SQLAlchemy :class:`~sqlalchemy.engine.URL` of the kiosk database.
    """
    section = (opts or {}).get("kiosk") or {}
    db = section.get("db")
    if db in (None, ""):
        return URL.create("sqlite", database=sqlite_path(opts))
    if isinstance(db, str):
        try:
            return make_url(db)
        except ArgumentError:
            raise KioskInputError(
                "kiosk:db is not a database URL (accepted: mysql+pymysql://user:pass@host/db, "
                "sqlite:////path/file, or a mapping with host, user, database)"
            ) from None
    if isinstance(db, dict):
        unknown = set(db) - {"driver", "host", "port", "user", "password", "password_file", "database", "query"}
        if unknown:
            raise KioskInputError(
                f"kiosk:db has unknown key(s) {sorted(unknown)} (accepted: driver, host, port, "
                "user, password, password_file, database, query)"
            )
        missing = [key for key in ("host", "database") if not db.get(key)]
        if missing:
            raise KioskInputError(f"kiosk:db is missing {', '.join(missing)}")
        password = db.get("password")
        if db.get("password_file"):
            try:
                with open(db["password_file"], encoding="utf-8") as handle:
                    password = handle.read().strip()
            except OSError as exc:
                raise KioskInputError(
                    f"kiosk:db:password_file {db['password_file']!r} cannot be read: {exc.strerror}"
                ) from None
        query = {"charset": "utf8mb4"}
        query.update(db.get("query") or {})
        return URL.create(
            db.get("driver", "mysql+pymysql"),
            username=db.get("user"),
            password=password,
            host=db["host"],
            port=int(db.get("port", 3306)),
            database=db["database"],
            query=query,
        )
    raise KioskInputError(f"kiosk:db must be a URL string or a mapping, not {type(db).__name__}")


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
        now = clock.utcnow()
        with self.begin() as conn:
            existing = {row.name: row for row in conn.execute(sa.select(schema.campuses))}
            for name, spec in self.campuses_config.items():
                values = {
                    "timezone": spec["timezone"],
                    "broadcast": spec["broadcast"],
                    "relays": spec["relays"],
                }
                old = existing.get(name)
                if old is None:
                    conn.execute(schema.campuses.insert().values(name=name, updated_at=now, **values))
                elif (old.timezone, old.broadcast, list(old.relays or [])) != (
                    values["timezone"],
                    values["broadcast"],
                    values["relays"],
                ):
                    conn.execute(
                        schema.campuses.update().where(schema.campuses.c.name == name).values(updated_at=now, **values)
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
                for row in conn.execute(sa.select(schema.campuses).order_by(schema.campuses.c.name))
            }


_engines = {}
_lock = threading.Lock()


def open_store(opts):
    """
    Open the kiosk database configured in ``opts`` (master or minion options)
    and mirror the configured campuses. On first use in this process the
    schema owner (the master of masters, see
    :func:`schema_owner`) creates or upgrades the schema;
    every other process only checks its version and refuses a database that
    is behind. Engines are cached per URL.
    """
    url = db_url(opts)
    campus_config = config.campuses(opts)
    owner = schema_owner(opts, url)
    key = url.render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(key)
        try:
            if engine is None:
                engine = make_engine(url)
                try:
                    migrations.ensure_schema(engine, migrate=owner)
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


def upgrade_schema(opts, test=False):
    """
    Bring the schema of the database configured in ``opts`` to
    :data:`salt_kiosk.db.migrations.SCHEMA_VERSION` (with ``test``, only say
    what would be done). Return ``{"old": version, "new": version, "applied":
    [versions]}``; ``applied`` is empty when nothing was (or would be) done.
    Raises :class:`~salt_kiosk.errors.KioskStoreError` when the database is
    unreachable.
    """
    engine = make_engine(db_url(opts))
    try:
        with engine.connect() as conn:
            have = migrations.current_version(conn)
        if have >= migrations.SCHEMA_VERSION or test:
            return {"old": have, "new": max(have, migrations.SCHEMA_VERSION), "applied": []}
        return {"old": have, "new": migrations.SCHEMA_VERSION, "applied": migrations.upgrade(engine)}
    except SQLAlchemyError as exc:
        raise KioskStoreError(
            f"kiosk database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.__class__.__name__}: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()


def dispose_all():
    """Close every cached engine (tests, process shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
