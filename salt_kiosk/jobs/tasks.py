"""
Unit-split batch jobs (``kiosk_jobs``): one job over thousands of kiosks, cut
into units so that one dead host never hangs the rest.

A task resolves its minions, records each as ``pending``, splits them into
units of ``unit`` minions and runs at most ``concurrency`` units at a time.
Each unit is one Salt job with a hard deadline of ``timeout`` seconds: the
returns that arrive in time are recorded as ``success`` (retcode 0) or
``failed``; a minion some master targeted (its key is accepted there) that did
not return in time is ``timeout``; a minion no master knows is ``absent``.
Tasks and per-minion results live in ``kiosk_tasks`` / ``kiosk_task_results``.

``progress(jid)`` reads what the ``kiosk_mysql`` returner recorded for any job.

When the database goes away while a task runs, the units keep running: each
unit's outcome is kept and its recording retried (1, 2, 4 ... 10 s apart) for
up to ``DB_PATIENCE`` seconds, with one warning when the database goes and one
when it is back. The returns themselves are spooled by the returner on every
master and replayed when the database is back.
"""

import concurrent.futures
import json
import logging
import os
import subprocess
import sys
import time
import uuid

import sqlalchemy as sa

from salt_kiosk import clock, inventory, validate
from salt_kiosk.db import schema, store
from salt_kiosk.errors import KioskInputError
from salt_kiosk.jobs import cache, spool
from salt_kiosk.jobs.writer import UNREACHABLE

log = logging.getLogger(__name__)

#: Seconds a running task keeps retrying to record an outcome while the database is unreachable.
DB_PATIENCE = 600


_sleep = time.sleep


def retrying(kstore, what, work, patience=DB_PATIENCE, sleep=None, begin=True):
    """
    Run ``work(conn)`` in a transaction (or a plain connection when ``begin``
    is False) and return its result, retrying while the database is
    unreachable for up to ``patience`` seconds. Logs one warning when the
    database is lost and one when it is back; raises the last error after
    ``patience``.
    """
    sleep = sleep or _sleep
    delay = waited = 0
    while True:
        try:
            with kstore.begin() if begin else kstore.connect() as conn:
                result = work(conn)
        except UNREACHABLE as exc:
            if waited >= patience:
                log.error("kiosk_jobs: %s not recorded: the database stayed unreachable for %ds", what, waited)
                raise
            if not waited:
                log.warning(
                    "kiosk_jobs: the database is unreachable (%s); retrying %s for up to %ds", exc, what, patience
                )
            delay = min(max(delay * 2, 1), 10)
            sleep(delay)
            waited += delay
            continue
        if waited:
            log.warning("kiosk_jobs: the database is back after %ds; %s recorded", waited, what)
        return result


STATUSES = ("success", "failed", "timeout", "absent")


def _positive(name, value, upper):
    return validate.whole_number(value, name, 1, upper, accepted=f"a whole number 1-{upper}")


#: Most minion ids a list target may name.
MAX_LIST_TARGET = 10000


def resolve(kstore, tgt, allow_unknown=False):
    """
    The kiosks of ``tgt``: an inventory target (``*``, ``campus:``, ``group:``,
    ``id:<glob>``) or a list of minion ids (also as one comma-separated string). ``[(minion_id, ip)]``; matching
    nothing is an error. Listed ids that are not kiosks of the inventory are
    refused unless ``allow_unknown``.
    """
    known = {k["minion_id"]: k for k in inventory.list_kiosks(kstore, "*")}
    if isinstance(tgt, (list, tuple)):
        if len(tgt) > MAX_LIST_TARGET:
            raise KioskInputError(f"tgt lists {len(tgt)} minion ids: at most {MAX_LIST_TARGET} are accepted")
        ids = [validate.minion_id(m) for m in tgt]
        if not ids:
            raise KioskInputError("tgt is an empty list: expected minion ids or an inventory target")
        unknown = [m for m in dict.fromkeys(ids) if m not in known]
        if unknown and not allow_unknown:
            shown = ", ".join(repr(m) for m in unknown[:10]) + (
                f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            )
            raise KioskInputError(
                f"tgt names minion(s) that are not kiosks of the inventory: {shown} "
                "(accepted: inventory kiosks; pass allow_unknown=True to target other minions); nothing was run"
            )
        return [(m, (known.get(m) or {}).get("ip")) for m in dict.fromkeys(ids)]
    if isinstance(tgt, str) and tgt != "*" and ":" not in tgt:  # one id or a comma-separated list
        return resolve(kstore, [part.strip() for part in tgt.split(",") if part.strip()], allow_unknown=allow_unknown)
    inventory.parse_target(tgt)
    kiosks = inventory.list_kiosks(kstore, tgt)
    if not kiosks:
        raise KioskInputError(f"target {tgt!r} matches no kiosk in the inventory; nothing was run")
    return [(k["minion_id"], k.get("ip")) for k in kiosks]


def create(kstore, tgt, fun, arg=None, unit=30, timeout=60, concurrency=4, allow_unknown=False, authorize=None):
    """
    Validate, resolve and record a task with every minion pending; return its id.

    ``authorize(fun, arg, minion_ids, known_ids)``, when given, runs after the
    target is resolved and before anything is recorded; it raises to refuse.
    """
    unit = _positive("unit", unit, 10000)
    timeout = _positive("timeout", timeout, 86400)
    concurrency = _positive("concurrency", concurrency, 64)
    if not isinstance(fun, str) or not fun or "." not in fun:
        raise KioskInputError(f"fun {fun!r} is not a Salt function name: expected module.function")
    if arg is None:
        arg = []
    elif not isinstance(arg, (list, tuple)):
        arg = [arg]
    minions = resolve(kstore, tgt, allow_unknown=allow_unknown)
    if authorize is not None:
        known = [k["minion_id"] for k in inventory.list_kiosks(kstore, "*")]
        authorize(fun, list(arg), [m for m, _ip in minions], known)
    task_id = uuid.uuid4().hex
    now = clock.utcnow()
    with kstore.begin() as conn:
        conn.execute(
            schema.tasks.insert().values(
                task_id=task_id,
                tgt=json.dumps(tgt),
                fun=fun,
                arg=json.dumps(list(arg)),
                unit=unit,
                timeout=timeout,
                concurrency=concurrency,
                total=len(minions),
                state="pending",
                created_at=now,
            )
        )
        conn.execute(
            schema.task_results.insert(),
            [
                {
                    "task_id": task_id,
                    "minion_id": minion,
                    "unit": index // unit,
                    "ip": ip,
                    "status": "pending",
                    "updated_at": now,
                }
                for index, (minion, ip) in enumerate(minions)
            ],
        )
    return task_id


def _targeted(opts, jid):
    """The minions any master targeted for ``jid`` (from the master's job cache)."""
    try:
        import salt.loader  # pylint: disable=import-outside-toplevel

        returners = salt.loader.returners(opts, {})
        load = returners[f"{opts.get('master_job_cache', 'local_cache')}.get_load"](jid) or {}
        return set(load.get("Minions") or [])
    except Exception as exc:  # pylint: disable=broad-except
        log.warning("kiosk_jobs: cannot read the targeted minions of %s: %s", jid, exc)
        return None


def run_unit(opts, minions, fun, arg, timeout):
    """
    Run one unit with a hard deadline. Return ``(jid, {minion: (status,
    retcode, return)})``.
    """
    import salt.client  # pylint: disable=import-outside-toplevel

    deadline = time.monotonic() + timeout  # publishing counts against the unit's time too
    client = salt.client.LocalClient(mopts=opts)
    outcome = {}
    jid = None
    try:
        pub = client.run_job(minions, fun, arg=list(arg), tgt_type="list", timeout=timeout, listen=True)
        jid = pub.get("jid") if isinstance(pub, dict) else None
        if not jid:
            return None, dict.fromkeys(minions, ("failed", None, "the master did not accept the job"))
        pending = set(minions)
        for event in client.get_returns_no_block(f"salt/job/{jid}"):
            if not pending or time.monotonic() > deadline:
                break
            if event is None:
                time.sleep(0.05)
                continue
            data = event.get("data") or {}
            minion = data.get("id")
            if minion in pending and "return" in data:
                retcode = data.get("retcode", 0)
                ok = data.get("success", True) and retcode in (0, None)
                outcome[minion] = ("success" if ok else "failed", retcode, data["return"])
                pending.discard(minion)
        if pending:
            targeted = _targeted(opts, jid)
            for minion in pending:
                known = targeted is None or minion in targeted
                outcome[minion] = (
                    ("timeout", None, f"no return within {timeout}s")
                    if known
                    else ("absent", None, "no master knows this minion")
                )
    finally:
        client.destroy()
    return jid, outcome


def execute(opts, kstore, task_id):
    """Run a recorded task to the end (in this process)."""
    with kstore.connect() as conn:
        task = conn.execute(sa.select(schema.tasks).where(schema.tasks.c.task_id == task_id)).first()
        rows = conn.execute(
            sa.select(schema.task_results.c.minion_id, schema.task_results.c.unit).where(
                schema.task_results.c.task_id == task_id
            )
        ).all()
    if task is None:
        raise KioskInputError(f"task {task_id!r} is unknown")
    units = {}
    for row in rows:
        units.setdefault(row.unit, []).append(row.minion_id)
    arg = json.loads(task.arg)
    retrying(
        kstore,
        f"task {task_id} start",
        lambda conn: conn.execute(
            schema.tasks.update().where(schema.tasks.c.task_id == task_id).values(state="running")
        ),
    )

    def one(number):
        try:
            jid, outcome = run_unit(opts, units[number], task.fun, arg, task.timeout)
        except Exception as exc:  # pylint: disable=broad-except
            # The unit could not be published or followed: its minions are not
            # left pending, they fail with the reason.
            log.error("kiosk_jobs task %s unit %s: %s", task_id, number, exc)
            jid, outcome = None, dict.fromkeys(units[number], ("failed", None, f"the unit could not run: {exc}"))
        recorded_at = clock.utcnow()

        def record(conn):
            for minion, (status, retcode, ret) in outcome.items():
                conn.execute(
                    schema.task_results.update()
                    .where(schema.task_results.c.task_id == task_id, schema.task_results.c.minion_id == minion)
                    .values(
                        status=status,
                        retcode=retcode if isinstance(retcode, int) else None,
                        ret=spool.dumps(ret),
                        jid=jid,
                        updated_at=recorded_at,
                    )
                )

        retrying(kstore, f"task {task_id} unit {number}", record)
        return number

    error = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=task.concurrency, thread_name_prefix="kiosk-unit") as pool:
        for future in concurrent.futures.as_completed([pool.submit(one, n) for n in sorted(units)]):
            try:
                future.result()
            except Exception as exc:  # pylint: disable=broad-except
                log.exception("kiosk_jobs task %s: a unit failed", task_id)
                error = str(exc)
    finished_at = clock.utcnow()
    retrying(
        kstore,
        f"task {task_id} end",
        lambda conn: conn.execute(
            schema.tasks.update()
            .where(schema.tasks.c.task_id == task_id)
            .values(state="failed" if error else "done", error=error, finished_at=finished_at)
        ),
    )
    return retrying(kstore, f"task {task_id} status", lambda _conn: status(kstore, task=task_id), begin=False)


def start_background(opts, task_id):
    """Run the task in a detached process, so ``salt-run`` returns at once."""
    conf_file = opts.get("conf_file")
    if not conf_file:
        raise KioskInputError(
            "the master configuration file is unknown, so the task cannot run in the background; pass wait=True"
        )
    log_path = os.path.join(opts.get("cachedir", "/tmp"), "kiosk", f"task-{task_id}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as out:
        subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "salt_kiosk.jobs.tasks", conf_file, task_id],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return log_path


def _task_summary(task, rows, with_results=True):
    counts = dict.fromkeys(STATUSES + ("pending",), 0)
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    done = task.total - counts["pending"]
    summary = {
        "task": task.task_id,
        "fun": task.fun,
        "tgt": json.loads(task.tgt),
        "state": task.state,
        "total": task.total,
        "done": done,
        "progress": round(done / task.total, 4) if task.total else 1.0,
        "counts": counts,
        "success_rate": round(counts["success"] / done, 4) if done else None,
        "units": len({row.unit for row in rows}),
        "created": clock.iso(task.created_at),
        "finished": clock.iso(task.finished_at) if task.finished_at else None,
        "error": task.error,
    }
    if with_results:
        summary["results"] = {row.minion_id: _result(row) for row in rows}
    return summary


def _result(row):
    return {
        "status": row.status,
        "unit": row.unit,
        "ip": row.ip,
        "jid": row.jid,
        "retcode": row.retcode,
        "return": json.loads(row.ret) if row.ret else None,
    }


def status(kstore, task=None, minions=None, ip=None):
    """
    One task (``task``), or the latest result of given minions / IPs across
    tasks (``minions``, ``ip``), or the 20 newest tasks (no argument).
    """
    with kstore.connect() as conn:
        if task is not None:
            row = conn.execute(sa.select(schema.tasks).where(schema.tasks.c.task_id == str(task))).first()
            if row is None:
                raise KioskInputError(f"task {task!r} is unknown: see kiosk_jobs.status for the recent tasks")
            rows = conn.execute(
                sa.select(schema.task_results)
                .where(schema.task_results.c.task_id == row.task_id)
                .order_by(schema.task_results.c.unit, schema.task_results.c.minion_id)
            ).all()
            summary = _task_summary(row, rows)
            if minions is not None or ip is not None:
                wanted_m = set([minions] if isinstance(minions, str) else minions or [])
                wanted_ip = set([ip] if isinstance(ip, str) else ip or [])
                summary["results"] = {
                    m: r for m, r in summary["results"].items() if m in wanted_m or r["ip"] in wanted_ip
                }
            return summary
        if minions is not None or ip is not None:
            query = sa.select(schema.task_results, schema.tasks.c.fun, schema.tasks.c.created_at).join(
                schema.tasks, schema.tasks.c.task_id == schema.task_results.c.task_id
            )
            conds = []
            if minions is not None:
                conds.append(
                    schema.task_results.c.minion_id.in_([minions] if isinstance(minions, str) else list(minions))
                )
            if ip is not None:
                conds.append(schema.task_results.c.ip.in_([ip] if isinstance(ip, str) else list(ip)))
            rows = conn.execute(query.where(sa.or_(*conds)).order_by(schema.tasks.c.created_at.desc())).all()
            out = {}
            for row in rows:
                entry = _result(row)
                entry.update(task=row.task_id, fun=row.fun, created=clock.iso(row.created_at))
                out.setdefault(row.minion_id, []).append(entry)
            if not out:
                raise KioskInputError(f"no task result for minions={minions!r} ip={ip!r}")
            return out
        recent = conn.execute(sa.select(schema.tasks).order_by(schema.tasks.c.created_at.desc()).limit(20)).all()
        listing = []
        for row in recent:
            rows = conn.execute(
                sa.select(schema.task_results.c.status, schema.task_results.c.unit).where(
                    schema.task_results.c.task_id == row.task_id
                )
            ).all()
            listing.append(_task_summary(row, rows, with_results=False))
        return listing


def progress(opts, jid):
    """Progress of any job from what the ``kiosk_mysql`` returner recorded."""
    jid = str(jid)
    expected = cache.job_minions_of(opts, jid)
    got = cache.get_jid(opts, jid)
    load = cache.get_load(opts, jid)
    if not expected and not got and not load:
        raise KioskInputError(f"job {jid!r} is unknown to the kiosk_mysql job store")
    succeeded = sorted(m for m, r in got.items() if r["success"] is not False and r["retcode"] in (0, None))
    failed = sorted(m for m in got if m not in succeeded)
    waiting = sorted(set(expected) - set(got))
    total = len(set(expected) | set(got))
    return {
        "jid": jid,
        "fun": load.get("fun"),
        "expected": total,
        "returned": len(got),
        "success": succeeded,
        "failed": failed,
        "waiting": waiting,
        "progress": round(len(got) / total, 4) if total else None,
        "success_rate": round(len(succeeded) / len(got), 4) if got else None,
        "masters": sorted({r["master_id"] for r in got.values()}),
    }


def _main(argv):
    import salt.config  # pylint: disable=import-outside-toplevel

    conf_file, task_id = argv
    opts = salt.config.master_config(conf_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kstore = store.open_store(opts)
    execute(opts, kstore, task_id)


if __name__ == "__main__":
    _main(sys.argv[1:])
