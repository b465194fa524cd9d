"""
Benchmark: the kiosk_mysql returner against saltext-mysql's returner (the
MySQL returner Salt ships as an extension) at fleet scale, on the same
MariaDB, in one run.

- ``--returns`` returns (default 100,000) of ONE jid, written at once by
  ``--masters`` syndic masters (default 2) through ``--workers`` worker
  processes each (default 2), as the masters' MWorkers call ``returner()``,
  one call per return;
- ``--events`` events (default 1,000,000) through ``event_return``, in
  batches of ``--batch`` (as each master's event-return queue hands them
  over), one process per master, all masters at once; then one master's
  share again with the database to itself;
- then reads, with ``--jobs`` job loads stored (default 10,000): ``get_jid``
  of the job with every return, and ``get_jids``.

Each worker is a process of its own (spawned, like a master's worker, never
sharing a connection), loads the returner with Salt's own loader
(``salt.loader.returners``) under its master's id, and waits for the start
signal; the wall time runs from that signal to the last worker's end. Rows
are counted afterwards and every worker reports its errors: the run fails on
an error, a missing row or a worker that does not finish (a deadlock).

Goals: no error, no deadlock, no row lost; returns at least 1.5x
saltext-mysql's throughput and events at least 5x; ``get_jid`` of the big job
and ``get_jids`` each under 1 s.

The benchmark creates a database and a user of its own and drops both at the
end. Needs ``pip install saltext-mysql`` (the ``bench`` extra) and a MariaDB
on 127.0.0.1:3306 where root can log in without a password (or set
KIOSK_BENCH_MYSQL_USER / KIOSK_BENCH_MYSQL_PASSWORD for an account that may
create databases and users).

Run: python bench/returner.py [--returns 100000] [--events 1000000] [--masters 2] [--workers 2]
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
import time

import preflight
import pymysql

# Set once in the benchmark process; the spawned workers inherit it.
DB = os.environ.setdefault("KIOSK_BENCH_RETURNER_DB", f"kiosk_bench_{os.getpid()}")
USER, PASSWORD = "kiosk_bench", "kiosk-bench-pw"
JID = "20261205000000000001"
OWNER = "bench-master"
#: A worker that has not finished this long after the start is taken for a deadlock.
STUCK_AFTER = 1800

SALTEXT_SCHEMA = [
    "CREATE TABLE jids (jid varchar(255) NOT NULL, `load` mediumtext NOT NULL, UNIQUE KEY jid (jid))",
    "CREATE TABLE salt_returns (fun varchar(50) NOT NULL, jid varchar(255) NOT NULL, `return` mediumtext NOT NULL,"
    " id varchar(255) NOT NULL, success varchar(10) NOT NULL, full_ret mediumtext NOT NULL,"
    " alter_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP, KEY id (id), KEY jid (jid), KEY fun (fun))",
    "CREATE TABLE salt_events (id BIGINT NOT NULL AUTO_INCREMENT, tag varchar(255) NOT NULL, data mediumtext NOT NULL,"
    " alter_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP, master_id varchar(255) NOT NULL, PRIMARY KEY (id), KEY tag (tag))",
]


def admin(sql_list, database=None):
    conn = pymysql.connect(
        host="127.0.0.1",
        user=os.environ.get("KIOSK_BENCH_MYSQL_USER", "root"),
        password=os.environ.get("KIOSK_BENCH_MYSQL_PASSWORD", ""),
        database=database,
        autocommit=True,
    )
    try:
        with conn.cursor() as cursor:
            for sql in sql_list:
                cursor.execute(sql)
            return cursor.fetchall()
    finally:
        conn.close()


def count(table):
    return admin([f"SELECT COUNT(*) FROM {table}"], database=DB)[0][0]


def master_opts(workdir, master_id):
    import salt.config  # pylint: disable=import-outside-toplevel

    opts = salt.config.master_config(os.path.join(workdir, "master"))
    cachedir = os.path.join(workdir, master_id)
    os.makedirs(cachedir, exist_ok=True)
    opts.update(
        {
            "cachedir": cachedir,
            "id": master_id,
            "master_id": master_id,
            "mysql.host": "127.0.0.1",
            "mysql.user": USER,
            "mysql.pass": PASSWORD,
            "mysql.db": DB,
            "mysql.port": 3306,
            "kiosk_mysql": {
                "db": f"mysql+pymysql://{USER}:{PASSWORD}@127.0.0.1:3306/{DB}",
                "master_id": master_id,
                # The benchmark's own process creates the schema, as the master of masters does.
                "schema_owner": master_id == OWNER,
            },
        }
    )
    return opts


def loaded(workdir, master_id):
    import salt.loader  # pylint: disable=import-outside-toplevel

    return salt.loader.returners(master_opts(workdir, master_id), {})


def a_return(index):
    return {
        "jid": JID,
        "id": f"kiosk-{index:06d}",
        "fun": "test.ping",
        "fun_args": [],
        "return": True,
        "retcode": 0,
        "success": True,
    }


def an_event(index):
    minion = f"kiosk-{index % 100000:06d}"
    return {
        "tag": f"salt/job/2026120500{index // 100000:010d}/ret/{minion}",
        "data": {"fun": "test.ping", "return": True, "id": minion, "i": index},
    }


def worker(name, workdir, master_id, kind, first, last, batch, ready, go, results):
    """One master's worker process: ``returner()`` per return, or ``event_return`` per batch of events."""
    try:
        returners = loaded(workdir, master_id)
        func = returners[f"{name}.{'returner' if kind == 'returns' else 'event_return'}"]
    except Exception as exc:  # pylint: disable=broad-except
        results.put((master_id, 1, f"{type(exc).__name__}: {exc}"))
        ready.release()
        return
    ready.release()
    go.wait()
    errors, first_error = 0, None
    if kind == "returns":
        for index in range(first, last):
            try:
                func(a_return(index))
            except Exception as exc:  # pylint: disable=broad-except
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
    else:
        for start in range(first, last, batch):
            try:
                func([an_event(index) for index in range(start, min(start + batch, last))])
            except Exception as exc:  # pylint: disable=broad-except
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
    results.put((master_id, errors, first_error))


def run_workers(name, workdir, kind, total, processes, batch):
    """Start ``processes`` (master id, share) workers, signal them together; return the wall time."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = []
    share = -(-total // len(processes))
    for number, master_id in enumerate(processes):
        first, last = number * share, min(total, (number + 1) * share)
        proc = ctx.Process(target=worker, args=(name, workdir, master_id, kind, first, last, batch, ready, go, results))
        proc.start()
        procs.append(proc)
    for _ in procs:
        ready.acquire()
    started = time.perf_counter()
    go.set()
    outcomes = []
    for _ in procs:
        outcomes.append(results.get(timeout=STUCK_AFTER))
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join(timeout=60)
    failed = [outcome for outcome in outcomes if outcome[1]]
    for master_id in sorted(set(processes)):
        # kiosk_mysql spools what the database does not take: for the benchmark that is an error.
        spool = os.path.join(workdir, master_id, "kiosk_mysql_spool")
        if os.path.isdir(spool) and os.listdir(spool):
            failed.append((master_id, len(os.listdir(spool)), f"items left in the spool {spool}"))
    if failed:
        raise RuntimeError(f"{name} {kind}: errors in the workers: {failed}")
    return elapsed


def timed(func, *args):
    started = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - started, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--returns", type=int, default=100000)
    parser.add_argument("--events", type=int, default=1000000)
    parser.add_argument("--masters", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="worker processes per master writing returns")
    parser.add_argument("--batch", type=int, default=1000, help="events per event_return call")
    parser.add_argument("--jobs", type=int, default=10000, help="job loads stored before get_jids")
    args = parser.parse_args()
    for option in ("returns", "events", "masters", "workers", "batch", "jobs"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} {getattr(args, option)}: must be at least 1")
    status = preflight.refuse(preflight.mariadb, preflight.saltext_mysql)
    if status:
        return status

    admin(
        [
            f"CREATE DATABASE {DB}",
            f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'",
            f"GRANT ALL ON {DB}.* TO '{USER}'@'127.0.0.1'",
        ]
    )
    admin(SALTEXT_SCHEMA, database=DB)
    workdir = tempfile.mkdtemp(prefix="kiosk-bench-returner-")
    masters = [f"relay-{chr(ord('a') + n)}" for n in range(args.masters)]
    alone = -(-args.events // args.masters)
    try:
        returners = loaded(workdir, OWNER)
        if "mysql.event_return" not in returners:
            raise SystemExit("saltext-mysql is not installed: pip install saltext-mysql (or .[bench])")
        returners["kiosk_mysql.returner"](dict(a_return(0), jid="warmup"))  # schema creation outside the timing
        figures, reads = {}, {}
        for name in ("mysql", "kiosk_mysql"):
            writers = [master for master in masters for _ in range(args.workers)]
            figures[(name, "returns")] = run_workers(name, workdir, "returns", args.returns, writers, 1)
            figures[(name, "events")] = run_workers(name, workdir, "events", args.events, masters, args.batch)
            # One master's share alone: its event-return process with the database to itself.
            figures[(name, "alone")] = run_workers(name, workdir, "events", alone, masters[:1], args.batch)
            for number in range(args.jobs):
                jid = f"2026120400{number:010d}"
                returners[f"{name}.save_load"](
                    jid, {"fun": "test.ping", "arg": [], "tgt": "*", "jid": jid, "user": "root"}
                )
            reads[(name, "get_jid")] = timed(returners[f"{name}.get_jid"], JID)
            reads[(name, "get_jids")] = timed(returners[f"{name}.get_jids"])
        stored = {
            "mysql": (count("salt_returns"), count("salt_events")),
            "kiosk_mysql": (count(f"kiosk_returns WHERE jid = '{JID}'"), count("kiosk_events")),
        }
        expected = (args.returns, args.events + alone)
        print(
            f"{args.returns} returns of one jid by {args.masters} masters x {args.workers} worker processes, "
            f"{args.events} events (batches of {args.batch}, one process per master); same MariaDB:"
        )
        for name, label in (("mysql", "saltext-mysql"), ("kiosk_mysql", "kiosk_mysql")):
            ret_time, ev_time = figures[(name, "returns")], figures[(name, "events")]
            jid_time, got = reads[(name, "get_jid")]
            jids_time, jobs = reads[(name, "get_jids")]
            alone_time = figures[(name, "alone")]
            print(
                f"  {label:<14} returns {ret_time:7.2f} s ({args.returns / ret_time:7.0f}/s)   "
                f"events {ev_time:7.2f} s ({args.events / ev_time:7.0f}/s; one master alone "
                f"{alone / alone_time:7.0f}/s)   "
                f"get_jid {jid_time:5.2f} s ({len(got)} minions)   get_jids {jids_time:5.2f} s ({len(jobs)} jobs)   "
                f"rows stored {stored[name]}"
            )
        ret_x = figures[("mysql", "returns")] / figures[("kiosk_mysql", "returns")]
        ev_x = figures[("mysql", "events")] / figures[("kiosk_mysql", "events")]
        lost = [name for name, rows in stored.items() if rows != expected]
        slow = [f"{name} {what}" for (name, what), (took, _) in reads.items() if name == "kiosk_mysql" and took >= 1]
        print(f"  returns: kiosk_mysql {ret_x:.2f}x saltext-mysql's throughput (goal >= 1.5x)")
        alone_x = figures[("mysql", "alone")] / figures[("kiosk_mysql", "alone")]
        print(
            f"  events:  kiosk_mysql {ev_x:.1f}x saltext-mysql's throughput with {args.masters} masters at once, "
            f"{alone_x:.1f}x from one master alone (goal >= 5x)"
        )
        ok = ret_x >= 1.5 and min(ev_x, alone_x) >= 5 and not lost and not slow
        print(
            f"RESULT returns={ret_x:.2f}x events={ev_x:.1f}x events-one-master={alone_x:.1f}x rows-lost={lost or 'none'} slow-reads={slow or 'none'} "
            f"errors=none {'MET' if ok else 'MISSED'}"
        )
        if lost:
            return 1
    finally:
        admin([f"DROP DATABASE IF EXISTS {DB}", f"DROP USER IF EXISTS '{USER}'@'127.0.0.1'"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
