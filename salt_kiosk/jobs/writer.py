"""
Job results in the central database: the library behind the ``kiosk_mysql``
returner.

Every syndic master (and the master of masters) writes job loads, returns and
events into the same tables, so the same jid arriving from several masters is
normal: loads, minion lists and returns are written with an upsert keyed on
``(jid)`` / ``(jid, minion_id)`` (MySQL ``INSERT ... ON DUPLICATE KEY UPDATE``,
SQLite ``ON CONFLICT DO NOTHING``): the first writer's row stays, later
writers change nothing and raise nothing. Each row records the ``master_id``
that wrote it. ``event_return`` writes a whole batch with one executemany
(PyMySQL sends it as multi-row INSERTs).

Nothing is lost when the database is unreachable: the item goes to the durable
spool (:mod:`salt_kiosk.jobs.spool`), which is replayed in order before the next
write that reaches the database. Replays are idempotent (natural keys for
returns, a unique id per event), so a replay interrupted half-way duplicates
nothing. The job cache reads are in :mod:`salt_kiosk.jobs.cache`.
"""

import datetime
import hashlib
import logging
import os
import threading
import time
import uuid

import pymysql
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from salt_kiosk import clock, validate
from salt_kiosk.db import migrations, schema, store
from salt_kiosk.errors import KioskInputError, KioskSchemaError, KioskStoreError
from salt_kiosk.jobs.spool import DEFAULT_SPOOL_MAX, DEFAULT_SPOOL_MAX_BYTES, Spool, dumps

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 10

#: Errors that mean "the database is not reachable now": spool and retry later.
UNREACHABLE = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    KioskStoreError,
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
    ConnectionError,
)


#: The options a ``kiosk_mysql`` profile, ``--return_kwargs`` or the ``kiosk_mysql:`` section may set.
OPTIONS = ("db", "master_id", "spool_dir", "spool_max", "spool_max_bytes", "retry_after", "schema_owner")


def settings(opts, options=None):
    """
    The returner's settings, validated: ``kiosk_mysql:`` with ``db`` falling
    back to ``kiosk:db``.

    ``options``, when given, replaces the ``kiosk_mysql:`` section: it is what
    the returner gathered with Salt's ``get_returner_options`` for one call
    (the ``--return_config`` profile, ``--return_kwargs``, the default
    section for what they leave out). A key outside :data:`OPTIONS` is
    refused. A database other than the configured one gets its own default
    spool directory (``kiosk_mysql_spool-<12 hex digits of its URL>``): a
    spool is replayed into the database of whoever owns it.
    """
    configured = dict(opts.get("kiosk_mysql") or {})
    cachedir = opts.get("cachedir", "/var/cache/salt/master")
    if options is None:
        section = configured
    else:
        if not isinstance(options, dict):
            raise KioskInputError(
                f"kiosk_mysql options {str(options)[:64]!r} are not a mapping (accepted: {', '.join(OPTIONS)})"
            )
        unknown = sorted(str(key)[:64] for key in options if key not in OPTIONS)
        if unknown:
            raise KioskInputError(f"kiosk_mysql: unknown option(s) {unknown} (accepted: {', '.join(OPTIONS)})")
        section = dict(options)
    url = _url(opts, section, cachedir)
    master_id = section.get("master_id") or opts.get("master_id") or opts.get("id") or "unknown"
    spool_dir = section.get("spool_dir")
    if not spool_dir:
        spool_dir = os.path.join(cachedir, "kiosk_mysql_spool")
        if options is not None and url != _url(opts, configured, cachedir):
            digest = hashlib.sha256(url.render_as_string(hide_password=True).encode("utf-8")).hexdigest()[:12]
            spool_dir = f"{spool_dir}-{digest}"
    spool_max = _positive_int(section, "spool_max", DEFAULT_SPOOL_MAX, "items")
    spool_max_bytes = _positive_int(section, "spool_max_bytes", DEFAULT_SPOOL_MAX_BYTES, "bytes")
    retry_after = validate.finite_number(
        section.get("retry_after", DEFAULT_RETRY_AFTER),
        "kiosk_mysql:retry_after",
        0,
        86400,
        accepted=f"seconds 0-86400, default {DEFAULT_RETRY_AFTER}",
    )
    owner_opts = {"order_masters": opts.get("order_masters"), "kiosk": {}}
    for where in (opts.get("kiosk") or {}, section):
        if "schema_owner" in where:
            owner_opts["kiosk"]["schema_owner"] = where["schema_owner"]
    return {
        "url": url,
        "master_id": str(master_id),
        "spool_dir": spool_dir,
        "spool_max": spool_max,
        "spool_max_bytes": spool_max_bytes,
        "retry_after": retry_after,
        "schema_owner": store.schema_owner(owner_opts, url),
    }


def _url(opts, section, cachedir):
    db = section.get("db") or (opts.get("kiosk") or {}).get("db")
    return store.db_url({"cachedir": cachedir, "kiosk": {"db": db}})


def _positive_int(section, key, default, unit):
    return validate.whole_number(
        section.get(key, default),
        f"kiosk_mysql:{key}",
        1,
        validate.MAX_WHOLE,
        accepted=f"a number of {unit}: an integer >= 1, default {default}",
    )


class JobResults:
    """Writes and reads job results; see the module docstring."""

    _instances = {}
    _guard = threading.Lock()

    def __init__(self, conf):
        self.conf = conf
        self.master_id = conf["master_id"]
        self.engine = self._make_engine(conf["url"])
        self.mysql = self.engine.dialect.name in ("mysql", "mariadb")
        self.spool = Spool(conf["spool_dir"], conf["spool_max"], conf.get("spool_max_bytes", DEFAULT_SPOOL_MAX_BYTES))
        self.ready = False
        self.down_until = 0.0

    @staticmethod
    def _make_engine(url):
        url = sa.engine.make_url(url)
        if url.get_backend_name() != "mysql":
            return store.make_engine(url)
        # One round trip per write: autocommit (every write is one idempotent
        # statement), no ping before use and no rollback on return to the pool;
        # a connection lost to a database restart is replaced by write()'s retry.
        connect_args = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = 5
        return sa.create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            pool_reset_on_return=None,
            pool_recycle=3600,
            pool_size=2,
            max_overflow=8,
            connect_args=connect_args,
        )

    @classmethod
    def get(cls, opts, options=None):
        """The shared instance for ``settings(opts, options)`` (one per database, master id and spool)."""
        conf = settings(opts, options)
        key = (str(conf["url"]), conf["master_id"], conf["spool_dir"])
        with cls._guard:
            if key not in cls._instances:
                cls._instances[key] = cls(conf)
            return cls._instances[key]

    @classmethod
    def dispose_all(cls):
        with cls._guard:
            for inst in cls._instances.values():
                inst.engine.dispose()
            cls._instances.clear()

    def ensure_schema(self):
        # Only the schema owner (the master of masters) migrates; a relay's
        # account may not, and waits for the owner (its items are spooled).
        if not self.ready:
            migrations.ensure_schema(self.engine, migrate=self.conf.get("schema_owner", False))
            self.ready = True

    # --- writing ---------------------------------------------------------------

    def _upsert(self, conn, table, rows):
        if not rows:
            return
        rows = [
            {
                key: (datetime.datetime.fromisoformat(value) if key in ("alter_time", "created_at") else value)
                for key, value in row.items()
            }
            for row in rows
        ]
        name = conn.dialect.name
        if name in ("mysql", "mariadb"):
            stmt = mysql_dialect.insert(table)
            first = table.primary_key.columns.values()[0] if table is not schema.events else table.c.uid
            stmt = stmt.on_duplicate_key_update({first.name: stmt.inserted[first.name]})
        else:
            stmt = sqlite_dialect.insert(table).on_conflict_do_nothing()
        conn.execute(stmt, rows)

    _COLUMNS = {
        "kiosk_jobs": ("jid", "fun", "tgt", "load", "master_id", "created_at"),
        "kiosk_job_minions": ("jid", "minion_id", "master_id"),
        "kiosk_returns": ("jid", "minion_id", "fun", "success", "retcode", "ret", "master_id", "alter_time"),
        "kiosk_events": ("uid", "tag", "data", "master_id", "alter_time"),
    }
    _KEY = {"kiosk_jobs": "jid", "kiosk_job_minions": "jid", "kiosk_returns": "jid", "kiosk_events": "uid"}

    _EVENTS_JSON_SQL = (
        "INSERT INTO kiosk_events (uid, tag, data, master_id, alter_time) "
        "SELECT j.u, j.t, j.d, %s, %s FROM JSON_TABLE(%s, '$[*]' COLUMNS ("
        "u VARCHAR(36) PATH '$[0]', t VARCHAR(255) PATH '$[1]', d JSON PATH '$[2]')) AS j "
        "ON DUPLICATE KEY UPDATE uid = kiosk_events.uid"
    )
    json_table = True

    def _mysql_events(self, conn, rows):
        """
        A whole batch of events in ONE statement with three parameters: the rows
        travel as a JSON document that the server unpacks with JSON_TABLE
        (MariaDB 10.6+, MySQL 8); older servers get a multi-row executemany.
        """
        if self.json_table:
            by_master = {}
            for row in rows:
                by_master.setdefault((row["master_id"], row["alter_time"]), []).append(row)
            try:
                for (master_id, stamp), group in by_master.items():
                    # Event data is encoded once, inside the document; the JSON
                    # column hands it to the server as JSON text.
                    document = dumps([[row["uid"], row["tag"], row["data"]] for row in group])
                    conn.execute(self._EVENTS_JSON_SQL, (master_id, datetime.datetime.fromisoformat(stamp), document))
                return
            except pymysql.err.ProgrammingError as exc:
                log.info("kiosk_mysql: JSON_TABLE unavailable (%s); writing events with executemany", exc)
                type(self).json_table = False
        self._mysql_write(conn, schema.events, [dict(row, data=dumps(row["data"])) for row in rows])

    def _mysql_write(self, conn, table, rows):
        """One INSERT ... ON DUPLICATE KEY UPDATE for all rows (PyMySQL sends multi-row VALUES)."""
        if not rows:
            return
        columns = self._COLUMNS[table.name]
        key = self._KEY[table.name]
        sql = (
            f"INSERT INTO {table.name} ({', '.join('`%s`' % c for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) ON DUPLICATE KEY UPDATE `{key}` = `{key}`"
        )
        stamp = {}
        params = []
        for row in rows:
            values = []
            for column in columns:
                value = row.get(column)
                if column in ("alter_time", "created_at") and isinstance(value, str):
                    value = stamp.get(value) or stamp.setdefault(value, datetime.datetime.fromisoformat(value))
                values.append(value)
            params.append(tuple(values))
        if len(params) == 1:
            conn.execute(sql, params[0])
        else:
            conn.executemany(sql, params)

    def apply(self, kind, payload):
        """Write one item (``load``, ``minions``, ``return`` or ``events``)."""
        self.ensure_schema()
        if self.mysql:
            # The DBAPI connection straight from the pool: with autocommit and
            # no reset on return, a return costs exactly one round trip.
            raw = self.engine.raw_connection()
            try:
                conn = raw.cursor()
                if kind == "load":
                    self._mysql_write(conn, schema.jobs, [payload["job"]])
                    self._mysql_write(conn, schema.job_minions, payload["minions"])
                elif kind == "minions":
                    self._mysql_write(conn, schema.job_minions, payload)
                elif kind == "return":
                    self._mysql_write(conn, schema.returns, [payload])
                elif kind == "events":
                    self._mysql_events(conn, payload)
                else:
                    raise ValueError(f"unknown spool item kind {kind!r}")
                conn.close()
            except BaseException:
                raw.invalidate()
                raise
            else:
                raw.close()
            return
        with self.engine.begin() as conn:
            if kind == "load":
                self._upsert(conn, schema.jobs, [payload["job"]])
                self._upsert(conn, schema.job_minions, payload["minions"])
            elif kind == "minions":
                self._upsert(conn, schema.job_minions, payload)
            elif kind == "return":
                self._upsert(conn, schema.returns, [payload])
            elif kind == "events":
                self._upsert(conn, schema.events, [dict(row, data=dumps(row["data"])) for row in payload])
            else:
                raise ValueError(f"unknown spool item kind {kind!r}")

    def down(self):
        """True while the circuit breaker holds: the database failed moments ago."""
        return time.monotonic() < self.down_until

    def mark_down(self, exc):
        """Open the circuit breaker: the database failed now; spool for ``retry_after`` seconds."""
        self.ready = False
        self.down_until = time.monotonic() + self.conf.get("retry_after", DEFAULT_RETRY_AFTER)
        log.warning(
            "kiosk_mysql: database unreachable (%s); spooling to %s for the next %ss",
            str(exc).splitlines()[0][:200],
            self.spool.folder,
            self.conf.get("retry_after", DEFAULT_RETRY_AFTER),
        )

    def _is_poison(self, exc):
        """
        True when the database is reachable but refuses this item (too long a
        value, a packet over max_allowed_packet ...): retrying cannot help.
        """
        if not isinstance(exc, UNREACHABLE):
            return True
        try:
            self.engine.dispose()
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception:  # pylint: disable=broad-except
            return False
        return True

    def _apply_retrying(self, kind, payload):
        try:
            self.apply(kind, payload)
        except UNREACHABLE:
            # A pooled connection may have died with a database restart:
            # start from fresh connections once before giving up.
            self.engine.dispose()
            self.apply(kind, payload)

    def write(self, kind, payload):
        """
        Write ``payload`` after replaying what is spooled; spool it when the
        database cannot be reached. Return ``"written"``, ``"spooled"``,
        ``"dropped"`` (spool full) or ``"refused"`` (the database rejects the
        item itself; it is kept in the spool directory as ``.bad`` while the
        spool's bounds allow, and counts against them).

        While the circuit breaker holds (``kiosk_mysql:retry_after`` seconds
        after a failure) items go straight to the spool, so a database outage
        never stalls the master on connect timeouts.
        """
        if self.down():
            return self._spool(kind, payload)
        if self.spool.entries():
            try:
                replayed = self.spool.replay(self.apply, is_poison=self._is_poison, block=False)
            except UNREACHABLE as exc:
                self.mark_down(exc)
                return self._spool(kind, payload)
            if replayed is None or self.spool.entries():
                # Another process is replaying: keep the order, queue behind it.
                return self._spool(kind, payload)
        try:
            self._apply_retrying(kind, payload)
            return "written"
        except Exception as exc:  # pylint: disable=broad-except
            if isinstance(exc, KioskSchemaError):
                # The schema is behind and only the master of masters may
                # migrate it: keep the item until it has.
                log.error("kiosk_mysql: %s", exc)
                self.mark_down(exc)
                return self._spool(kind, payload)
            if isinstance(exc, UNREACHABLE) and not self._is_poison(exc):
                self.mark_down(exc)
                return self._spool(kind, payload)
            if not isinstance(exc, (sa.exc.SQLAlchemyError, pymysql.err.MySQLError)):
                raise
            self.spool.put_aside(kind, payload, str(exc).splitlines()[0][:200])
            return "refused"

    def _spool(self, kind, payload):
        return "spooled" if self.spool.put(kind, payload) else "dropped"

    def flush(self):
        """Replay the spool now; return the number of items written."""
        self.ensure_schema()
        try:
            done = self.spool.replay(self.apply, is_poison=self._is_poison)
        except UNREACHABLE as exc:
            self.mark_down(exc)
            raise
        self.down_until = 0.0
        return done

    # --- shaping Salt's data -----------------------------------------------------

    def return_row(self, ret):
        # ``ret_kwargs`` may hold a database URL with its password: never stored.
        full = {key: value for key, value in ret.items() if not key.startswith("__") and key != "ret_kwargs"}
        return {
            "jid": str(ret["jid"]),
            "minion_id": str(ret["id"]),
            "fun": ret.get("fun"),
            "success": ret.get("success"),
            "retcode": ret.get("retcode") if isinstance(ret.get("retcode"), int) else None,
            "ret": dumps(full),
            "master_id": self.master_id,
            "alter_time": clock.utcnow().isoformat(),
        }

    def load_item(self, jid, load, minions=None):
        job = {
            "jid": str(jid),
            "fun": load.get("fun") if isinstance(load, dict) else None,
            "tgt": dumps(load.get("tgt")) if isinstance(load, dict) else None,
            "load": dumps(load),
            "master_id": self.master_id,
            "created_at": clock.utcnow().isoformat(),
        }
        return {"job": job, "minions": self.minion_rows(jid, minions or [])}

    def standalone_load(self, ret):
        """
        The load of a standalone job (a minion returned with jid ``req``, after
        the returner gave it a fresh jid), shaped as Salt's master shapes it
        (``salt/utils/job.py`` ``_store_job``): the return's fields without the
        return itself, ``arg`` from ``fun_args``, targeted at the minion by glob.
        """
        load = {
            key: value for key, value in ret.items() if not key.startswith("__") and key not in ("return", "ret_kwargs")
        }
        load.update(jid=str(ret["jid"]), arg=ret.get("fun_args", []), tgt=str(ret["id"]), tgt_type="glob")
        return self.load_item(ret["jid"], load, [ret["id"]])

    def minion_rows(self, jid, minions):
        return [{"jid": str(jid), "minion_id": str(m), "master_id": self.master_id} for m in minions]

    def event_rows(self, batch):
        stamp = clock.utcnow().isoformat()
        prefix = uuid.uuid4().hex[:20]
        return [
            {
                # Unique per event (replays of a spooled batch keep it): a
                # random prefix per batch plus the position in the batch.
                "uid": f"{prefix}-{index:08d}",
                "tag": str(event.get("tag", ""))[:255],
                "data": event.get("data", {}),
                "master_id": self.master_id,
                "alter_time": stamp,
            }
            for index, event in enumerate(batch)
        ]
