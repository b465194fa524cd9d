"""
The job cache read side of the ``kiosk_mysql`` returner: Salt's ``get_load``,
``get_jid``, ``get_fun``, ``get_jids``, ``get_jids_filter``, ``get_minions``
and ``clean_old_jobs`` over the tables written by :mod:`salt_kiosk.jobs.writer`.

Every function takes ``opts`` and an optional ``options``: the returner's
options as the ``kiosk_mysql`` loader module gathered them (see
:func:`salt_kiosk.jobs.writer.settings`); without them, the ``kiosk_mysql:``
section of ``opts``.
"""

import datetime
import functools
import json
import logging

import sqlalchemy as sa

from salt_kiosk import clock, validate
from salt_kiosk.db import schema
from salt_kiosk.jobs.writer import UNREACHABLE, JobResults, settings

log = logging.getLogger(__name__)


def _fresh_connection_once(func):
    """
    A read whose pooled connection died with a database restart (the error
    says the connection was invalidated) is tried once more on fresh
    connections. Without this, a long-lived process (the engine's
    ``LocalClient`` asking for a job's load right after publishing it) took
    the dead connection for a database outage: Salt then reports "jid does
    not exist" and every minion of the job as silent.
    """

    @functools.wraps(func)
    def wrapper(opts, *args, options=None, **kwargs):
        try:
            return func(opts, *args, options=options, **kwargs)
        except UNREACHABLE as exc:
            if not getattr(exc, "connection_invalidated", False):
                raise
            log.info("kiosk_mysql: a pooled connection was lost (%s); reading again", str(exc).splitlines()[0][:200])
            JobResults.get(opts, options).engine.dispose()
            return func(opts, *args, options=options, **kwargs)

    return wrapper


def _read(opts, options=None):
    results = JobResults.get(opts, options)
    results.ensure_schema()
    return results


@_fresh_connection_once
def get_load(opts, jid, options=None):
    """
    The job's load with ``Minions`` (every minion any master published it to,
    as Salt's local job cache reports it), or ``{}``.
    """
    with _read(opts, options).engine.connect() as conn:
        row = conn.execute(sa.select(schema.jobs.c.load).where(schema.jobs.c.jid == str(jid))).first()
        minions = conn.execute(
            sa.select(schema.job_minions.c.minion_id).where(schema.job_minions.c.jid == str(jid)).distinct()
        ).all()
    if not row:
        return {}
    load = json.loads(row.load)
    load["Minions"] = sorted({m.minion_id for m in minions} | set(load.get("Minions") or []))
    return load


@_fresh_connection_once
def get_jid(opts, jid, options=None):
    """``{minion: {"return": ..., "retcode": ..., "success": ...}}`` for one job."""
    # Three columns, not eight: with a pure-Python driver reading 100,000
    # returns costs by the column. ``retcode`` and ``success`` are in the stored
    # return itself, which their columns were made from (``return_row``).
    query = sa.select(schema.returns.c.minion_id, schema.returns.c.ret, schema.returns.c.master_id).where(
        schema.returns.c.jid == str(jid)
    )
    with _read(opts, options).engine.connect() as conn:
        rows = conn.execute(query).all()
    out = {}
    loads = json.loads
    for minion_id, ret, master_id in rows:
        full = loads(ret)
        retcode, success = full.get("retcode"), full.get("success")
        out[minion_id] = {
            "return": full.get("return"),
            # As the columns hold them: an integer retcode (True is 1), a boolean success.
            "retcode": int(retcode) if isinstance(retcode, int) else None,
            "success": None if success is None else bool(success),
            "master_id": master_id,
        }
    return out


@_fresh_connection_once
def get_fun(opts, fun, options=None):
    """``{minion: fun}`` for the minions whose latest return ran ``fun``."""
    with _read(opts, options).engine.connect() as conn:
        rows = conn.execute(
            sa.select(schema.returns.c.minion_id, sa.func.max(schema.returns.c.jid).label("jid"))
            .where(schema.returns.c.fun == fun)
            .group_by(schema.returns.c.minion_id)
        ).all()
    return {row.minion_id: fun for row in rows}


@_fresh_connection_once
def get_jids(opts, options=None):
    """``{jid: load}`` of every job recorded."""
    with _read(opts, options).engine.connect() as conn:
        rows = conn.execute(sa.select(schema.jobs.c.jid, schema.jobs.c.load).order_by(schema.jobs.c.jid)).all()
    return {row.jid: json.loads(row.load) for row in rows}


@_fresh_connection_once
def get_jids_filter(opts, count, filter_find_job=True, options=None):
    """The newest ``count`` jobs as ``[{"jid", "load"}]``, newest first."""
    query = sa.select(schema.jobs.c.jid, schema.jobs.c.load).order_by(schema.jobs.c.jid.desc()).limit(int(count))
    if filter_find_job:
        query = query.where(sa.or_(schema.jobs.c.fun.is_(None), schema.jobs.c.fun != "saltutil.find_job"))
    with _read(opts, options).engine.connect() as conn:
        rows = conn.execute(query).all()
    return [{"jid": row.jid, "load": json.loads(row.load)} for row in rows]


#: Most returns :func:`recent` gives.
MAX_RECENT = 500


@_fresh_connection_once
def recent(opts, minion_id, limit=20, options=None):
    """
    The newest ``limit`` (1-500) returns of one minion, newest first:
    ``[{"jid", "fun", "success", "retcode", "at", "master_id"}]`` (the
    returns themselves stay in the job cache: ``jobs.lookup_jid``).
    """
    minion_id = validate.minion_id(minion_id)
    limit = validate.whole_number(limit, "limit", 1, MAX_RECENT)
    table = schema.returns
    query = (
        sa.select(table.c.jid, table.c.fun, table.c.success, table.c.retcode, table.c.alter_time, table.c.master_id)
        .where(table.c.minion_id == minion_id)
        .order_by(table.c.alter_time.desc(), table.c.jid.desc())
        .limit(limit)
    )
    with _read(opts, options).engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "jid": row.jid,
            "fun": row.fun,
            "success": None if row.success is None else bool(row.success),
            "retcode": row.retcode,
            "at": clock.iso(row.alter_time),
            "master_id": row.master_id,
        }
        for row in rows
    ]


@_fresh_connection_once
def get_minions(opts, options=None):
    """Every minion id that returned something."""
    with _read(opts, options).engine.connect() as conn:
        return [row.minion_id for row in conn.execute(sa.select(schema.returns.c.minion_id).distinct()).all()]


@_fresh_connection_once
def job_minions_of(opts, jid, options=None):
    """The minions a job was published to, as recorded by every master."""
    with _read(opts, options).engine.connect() as conn:
        rows = conn.execute(
            sa.select(schema.job_minions.c.minion_id).where(schema.job_minions.c.jid == str(jid)).distinct()
        ).all()
    return sorted(row.minion_id for row in rows)


def clean_old_jobs(opts, options=None):
    """
    Delete jobs, returns and events older than ``keep_jobs_seconds`` (default
    24 h). Only the schema owner (the master of masters) deletes: a relay's
    account may insert and update results, never delete them.
    """
    keep = int(opts.get("keep_jobs_seconds") or int(opts.get("keep_jobs", 24)) * 3600)
    if keep <= 0 or not settings(opts, options)["schema_owner"]:
        return 0
    cutoff = clock.utcnow() - datetime.timedelta(seconds=keep)
    results = _read(opts, options)
    with results.engine.begin() as conn:
        old = sa.select(schema.jobs.c.jid).where(schema.jobs.c.created_at < cutoff).scalar_subquery()
        deleted = conn.execute(schema.returns.delete().where(schema.returns.c.alter_time < cutoff)).rowcount
        conn.execute(schema.job_minions.delete().where(schema.job_minions.c.jid.in_(old)))
        deleted += conn.execute(schema.jobs.delete().where(schema.jobs.c.created_at < cutoff)).rowcount
        deleted += conn.execute(schema.events.delete().where(schema.events.c.alter_time < cutoff)).rowcount
    return deleted
