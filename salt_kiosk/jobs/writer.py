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

Nothing is lost when the database is unreachable: the item goes to a durable
spool (one fsynced file per item under ``<cachedir>/kiosk_mysql_spool``) and the
spool is replayed in order, under a file lock, before the next write that
reaches the database. Replays are idempotent (natural keys for returns, a
unique id per event), so a replay interrupted half-way duplicates nothing. The
spool is bounded in items (``kiosk_mysql:spool_max``) and in bytes
(``kiosk_mysql:spool_max_bytes``), and items the database refused (kept as
``.json.bad`` for inspection) count against both bounds: when an item would
exceed either, it is dropped (a refused item is not kept) with an ERROR log
line saying so. Each file's size is part of its name, so the bound costs one
directory listing, not a stat per file. Several master processes may each add
one item past the bound at the same instant; no more.
"""

import datetime
import fcntl
import itertools
import json
import logging
import os
import re
import threading
import time
import uuid

import pymysql
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from salt_kiosk.db import schema
from salt_kiosk.db import migrations
from salt_kiosk import clock
from salt_kiosk.db import store
from salt_kiosk.errors import KioskInputError, KioskSchemaError, KioskStoreError
from salt_kiosk.files import write_atomically

log = logging.getLogger(__name__)

DEFAULT_SPOOL_MAX = 100_000
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_RETRY_AFTER = 10


#: Errors that mean "the database is not reachable now": spool and retry later.
UNREACHABLE = (
    sa.exc.OperationalError, sa.exc.InterfaceError, KioskStoreError,
    pymysql.err.OperationalError, pymysql.err.InterfaceError, ConnectionError,
)


def _default(obj):
    return obj.decode("utf-8", "replace") if isinstance(obj, bytes) else str(obj)


def dumps(value):
    """JSON for anything Salt returns (bytes and odd types become text)."""
    return json.dumps(value, default=_default)



def settings(opts):
    """The returner's settings: ``kiosk_mysql:`` with ``db`` falling back to ``kiosk:db``."""
    section = dict(opts.get("kiosk_mysql") or {})
    db = section.get("db") or (opts.get("kiosk") or {}).get("db")
    master_id = section.get("master_id") or opts.get("master_id") or opts.get("id") or "unknown"
    spool_dir = section.get("spool_dir") or os.path.join(opts.get("cachedir", "/var/cache/salt/master"), "kiosk_mysql_spool")
    spool_max = _positive_int(section, "spool_max", DEFAULT_SPOOL_MAX, "items")
    spool_max_bytes = _positive_int(section, "spool_max_bytes", DEFAULT_SPOOL_MAX_BYTES, "bytes")
    retry_after = float(section.get("retry_after", DEFAULT_RETRY_AFTER))
    url = store.db_url({"cachedir": opts.get("cachedir", "/var/cache/salt/master"), "kiosk": {"db": db}})
    owner_opts = {"order_masters": opts.get("order_masters"), "kiosk": {}}
    for where in (opts.get("kiosk") or {}, section):
        if "schema_owner" in where:
            owner_opts["kiosk"]["schema_owner"] = where["schema_owner"]
    return {"url": url, "master_id": str(master_id), "spool_dir": spool_dir, "spool_max": spool_max,
            "spool_max_bytes": spool_max_bytes, "retry_after": retry_after,
            "schema_owner": store.schema_owner(owner_opts, url)}


def _positive_int(section, key, default, unit):
    value = section.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < 1 or (isinstance(value, float) and value != number):
        raise KioskInputError(
            f"kiosk_mysql:{key} {str(value)[:64]!r} is not a number of {unit} (accepted: an integer >= 1, "
            f"default {default})"
        )
    return number


class Spool:
    """
    Durable FIFO of items that could not be written yet (one JSON file per
    item), bounded in items (``limit``) and bytes (``max_bytes``); items put
    aside as ``.json.bad`` count against both.
    """

    _counter = itertools.count(1)
    #: ``<time_ns>-<pid>-<counter>-<size>.json[.bad]``; names without the size
    #: (written before sizes were recorded) are stat'ed.
    _SIZED = re.compile(r"^\d{20}-\d{7}-\d{9}-(\d{12})\.json(?:\.bad)?$")

    def __init__(self, folder, limit, max_bytes=DEFAULT_SPOOL_MAX_BYTES):
        self.folder = folder
        self.limit = limit
        self.max_bytes = max_bytes
        os.makedirs(folder, mode=0o700, exist_ok=True)

    def entries(self):
        return sorted(name for name in os.listdir(self.folder) if name.endswith(".json"))

    def __len__(self):
        return len(self.entries())

    def usage(self):
        """``(items, bytes)`` held in the spool directory, waiting and refused (``.bad``) alike."""
        items = size = 0
        for name in os.listdir(self.folder):
            if not name.endswith((".json", ".json.bad")):
                continue
            items += 1
            match = self._SIZED.match(name)
            if match:
                size += int(match.group(1))
                continue
            try:
                size += os.stat(os.path.join(self.folder, name)).st_size
            except FileNotFoundError:
                items -= 1  # replayed meanwhile
        return items, size

    def _room(self, kind, data, what):
        """True when ``data`` fits under both bounds; log the drop otherwise."""
        items, size = self.usage()
        if items + 1 <= self.limit and size + len(data) <= self.max_bytes:
            return True
        log.error(
            "kiosk_mysql spool %s is FULL (%d items of kiosk_mysql:spool_max %d, %d bytes of "
            "kiosk_mysql:spool_max_bytes %d, refused .bad items included): dropping %s %s item of %d bytes; "
            "restore the database connection and inspect or delete the .json.bad files",
            self.folder, items, self.limit, size, self.max_bytes, what, kind, len(data),
        )
        return False

    def _name(self, size, suffix):
        # Wall-clock order across the master's processes, then a per-process counter.
        return f"{time.time_ns():020d}-{os.getpid():07d}-{next(self._counter):09d}-{size:012d}{suffix}"

    def _encode(self, kind, payload):
        text = dumps({"kind": kind, "payload": payload})
        return text, text.encode("utf-8")

    def put(self, kind, payload):
        text, data = self._encode(kind, payload)
        if not self._room(kind, data, "a"):
            return False
        write_atomically(os.path.join(self.folder, self._name(len(data), ".json")), text, mode=0o600)
        return True

    def put_aside(self, kind, payload, reason):
        """
        Keep an item the database refuses (not a connection problem) for
        inspection, when the spool's bounds allow; return True when kept.
        """
        text, data = self._encode(kind, payload)
        if not self._room(kind, data, "a refused"):
            log.error("kiosk_mysql: the database refused a %s item (%s); not kept (spool full)", kind, reason)
            return False
        name = self._name(len(data), ".json.bad")
        write_atomically(os.path.join(self.folder, name), text, mode=0o600)
        log.error("kiosk_mysql: the database refused a %s item (%s); kept as %s", kind, reason,
                  os.path.join(self.folder, name))
        return True

    def replay(self, apply, is_poison=lambda exc: False, block=True):
        """
        Apply every spooled item in order and remove it. Stop (keeping the
        rest) when the database is unreachable; an item the database itself
        refuses (``is_poison``) is moved aside as ``.bad`` so it cannot block
        the spool. Return the number of items written, or None when another
        process holds the replay lock and ``block`` is False.
        """
        lock_path = os.path.join(self.folder, ".lock")
        with open(lock_path, "w", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
            except BlockingIOError:
                return None
            done = 0
            for name in self.entries():
                path = os.path.join(self.folder, name)
                try:
                    with open(path, encoding="utf-8") as handle:
                        item = json.load(handle)
                except FileNotFoundError:
                    continue  # replayed by another process
                except ValueError:
                    log.error("kiosk_mysql spool item %s is unreadable; moved aside", path)
                    os.replace(path, path + ".bad")
                    continue
                try:
                    apply(item["kind"], item["payload"])
                except Exception as exc:  # pylint: disable=broad-except
                    if not is_poison(exc):
                        raise
                    log.error("kiosk_mysql: the database refuses spooled item %s (%s); moved aside", path,
                              str(exc).splitlines()[0][:200])
                    os.replace(path, path + ".bad")
                    continue
                os.unlink(path)
                done += 1
            if done:
                log.warning("kiosk_mysql replayed %d spooled item(s) from %s", done, self.folder)
            return done


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
            url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, pool_recycle=3600,
            pool_size=2, max_overflow=8, connect_args=connect_args,
        )

    @classmethod
    def get(cls, opts):
        conf = settings(opts)
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

    def _ensure_schema(self):
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
            {key: (datetime.datetime.fromisoformat(value) if key in ("alter_time", "created_at") else value)
             for key, value in row.items()}
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
        self._ensure_schema()
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

    def _mark_down(self, exc):
        self.ready = False
        self.down_until = time.monotonic() + self.conf.get("retry_after", DEFAULT_RETRY_AFTER)
        log.warning("kiosk_mysql: database unreachable (%s); spooling to %s for the next %ss",
                    str(exc).splitlines()[0][:200], self.spool.folder, self.conf.get("retry_after", DEFAULT_RETRY_AFTER))

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
                self._mark_down(exc)
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
                self._mark_down(exc)
                return self._spool(kind, payload)
            if isinstance(exc, UNREACHABLE) and not self._is_poison(exc):
                self._mark_down(exc)
                return self._spool(kind, payload)
            if not isinstance(exc, (sa.exc.SQLAlchemyError, pymysql.err.MySQLError)):
                raise
            self.spool.put_aside(kind, payload, str(exc).splitlines()[0][:200])
            return "refused"

    def _spool(self, kind, payload):
        return "spooled" if self.spool.put(kind, payload) else "dropped"

    def flush(self):
        """Replay the spool now; return the number of items written."""
        self._ensure_schema()
        try:
            done = self.spool.replay(self.apply, is_poison=self._is_poison)
        except UNREACHABLE as exc:
            self._mark_down(exc)
            raise
        self.down_until = 0.0
        return done

    # --- shaping Salt's data -----------------------------------------------------

    def return_row(self, ret):
        full = {key: value for key, value in ret.items() if not key.startswith("__")}
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


# --- reading (the job cache interface) ---------------------------------------------


def _read(opts):
    results = JobResults.get(opts)
    results._ensure_schema()  # pylint: disable=protected-access
    return results


def get_load(opts, jid):
    """
    The job's load with ``Minions`` (every minion any master published it to,
    as Salt's local job cache reports it), or ``{}``.
    """
    with _read(opts).engine.connect() as conn:
        row = conn.execute(sa.select(schema.jobs.c.load).where(schema.jobs.c.jid == str(jid))).first()
        minions = conn.execute(sa.select(schema.job_minions.c.minion_id).where(schema.job_minions.c.jid == str(jid))
                               .distinct()).all()
    if not row:
        return {}
    load = json.loads(row.load)
    load["Minions"] = sorted({m.minion_id for m in minions} | set(load.get("Minions") or []))
    return load


def get_jid(opts, jid):
    """``{minion: {"return": ..., "retcode": ..., "success": ...}}`` for one job."""
    with _read(opts).engine.connect() as conn:
        rows = conn.execute(sa.select(schema.returns).where(schema.returns.c.jid == str(jid))).all()
    out = {}
    for row in rows:
        full = json.loads(row.ret)
        out[row.minion_id] = {"return": full.get("return"), "retcode": row.retcode, "success": row.success,
                              "master_id": row.master_id}
    return out


def get_fun(opts, fun):
    """``{minion: fun}`` for the minions whose latest return ran ``fun``."""
    with _read(opts).engine.connect() as conn:
        rows = conn.execute(
            sa.select(schema.returns.c.minion_id, sa.func.max(schema.returns.c.jid).label("jid"))
            .where(schema.returns.c.fun == fun).group_by(schema.returns.c.minion_id)
        ).all()
    return {row.minion_id: fun for row in rows}


def get_jids(opts):
    """``{jid: load}`` of every job recorded."""
    with _read(opts).engine.connect() as conn:
        rows = conn.execute(sa.select(schema.jobs.c.jid, schema.jobs.c.load).order_by(schema.jobs.c.jid)).all()
    return {row.jid: json.loads(row.load) for row in rows}


def get_jids_filter(opts, count, filter_find_job=True):
    """The newest ``count`` jobs as ``[{"jid", "load"}]``, newest first."""
    query = sa.select(schema.jobs.c.jid, schema.jobs.c.load).order_by(schema.jobs.c.jid.desc()).limit(int(count))
    if filter_find_job:
        query = query.where(sa.or_(schema.jobs.c.fun.is_(None), schema.jobs.c.fun != "saltutil.find_job"))
    with _read(opts).engine.connect() as conn:
        rows = conn.execute(query).all()
    return [{"jid": row.jid, "load": json.loads(row.load)} for row in rows]


def get_minions(opts):
    """Every minion id that returned something."""
    with _read(opts).engine.connect() as conn:
        return [row.minion_id for row in conn.execute(sa.select(schema.returns.c.minion_id).distinct()).all()]


def job_minions_of(opts, jid):
    """The minions a job was published to, as recorded by every master."""
    with _read(opts).engine.connect() as conn:
        rows = conn.execute(sa.select(schema.job_minions.c.minion_id).where(schema.job_minions.c.jid == str(jid)).distinct()).all()
    return sorted(row.minion_id for row in rows)


def clean_old_jobs(opts):
    """
    Delete jobs, returns and events older than ``keep_jobs_seconds`` (default
    24 h). Only the schema owner (the master of masters) deletes: a relay's
    account may insert and update results, never delete them.
    """
    keep = int(opts.get("keep_jobs_seconds") or int(opts.get("keep_jobs", 24)) * 3600)
    if keep <= 0 or not settings(opts)["schema_owner"]:
        return 0
    cutoff = clock.utcnow() - datetime.timedelta(seconds=keep)
    results = _read(opts)
    with results.engine.begin() as conn:
        old = sa.select(schema.jobs.c.jid).where(schema.jobs.c.created_at < cutoff).scalar_subquery()
        deleted = conn.execute(schema.returns.delete().where(schema.returns.c.alter_time < cutoff)).rowcount
        conn.execute(schema.job_minions.delete().where(schema.job_minions.c.jid.in_(old)))
        deleted += conn.execute(schema.jobs.delete().where(schema.jobs.c.created_at < cutoff)).rowcount
        deleted += conn.execute(schema.events.delete().where(schema.events.c.alter_time < cutoff)).rowcount
    return deleted
