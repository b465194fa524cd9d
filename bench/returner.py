"""
Benchmark: the kiosk_mysql returner against saltext-mysql's returner (the
MySQL returner Salt ships as an extension), on the same MariaDB, in one run.

- 10,000 events through ``event_return`` (batches of ``--batch`` events, as the
  master's event-return queue hands them over);
- 5,000 returns through ``returner()``, one call per return.

Both returners are loaded by Salt's own loader (``salt.loader.returners``).
The benchmark creates a database and a user of its own and drops both at the
end. Goal: event_return at least 5x faster, returner() at least as fast.

Needs: ``pip install saltext-mysql`` (the ``bench`` extra) and a MariaDB on
127.0.0.1:3306 where root can log in without a password (or set
KIOSK_BENCH_MYSQL_USER / KIOSK_BENCH_MYSQL_PASSWORD for an account that may
create databases and users).

Run: python bench/returner.py [--events 10000] [--returns 5000] [--batch 1000]
"""

import argparse
import os
import tempfile
import time

import pymysql

DB = f"kiosk_bench_{os.getpid()}"
USER, PASSWORD = "kiosk_bench", "kiosk-bench-pw"

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--returns", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    import salt.config  # pylint: disable=import-outside-toplevel
    import salt.loader  # pylint: disable=import-outside-toplevel

    admin(
        [
            f"CREATE DATABASE {DB}",
            f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'",
            f"GRANT ALL ON {DB}.* TO '{USER}'@'127.0.0.1'",
        ]
    )
    admin(SALTEXT_SCHEMA, database=DB)
    workdir = tempfile.mkdtemp(prefix="kiosk-bench-returner-")
    try:
        opts = salt.config.master_config(os.path.join(workdir, "master"))
        opts.update(
            {
                "cachedir": workdir,
                "id": "bench-master",
                "master_id": "bench-master",
                "mysql.host": "127.0.0.1",
                "mysql.user": USER,
                "mysql.pass": PASSWORD,
                "mysql.db": DB,
                "mysql.port": 3306,
                "kiosk_mysql": {"db": f"mysql+pymysql://{USER}:{PASSWORD}@127.0.0.1:3306/{DB}"},
            }
        )
        returners = salt.loader.returners(opts, {})
        if "mysql.event_return" not in returners:
            raise SystemExit("saltext-mysql is not installed: pip install saltext-mysql (or .[bench])")
        events = [
            {
                "tag": f"salt/job/2026112500000000{i:04d}/ret/kiosk-{i % 500:04d}",
                "data": {"fun": "test.ping", "return": True, "id": f"kiosk-{i % 500:04d}", "i": i},
            }
            for i in range(args.events)
        ]
        rets = [
            {
                "jid": f"20261125000000{i // 500:06d}",
                "id": f"kiosk-{i % 500:04d}",
                "fun": "test.ping",
                "fun_args": [],
                "return": True,
                "retcode": 0,
                "success": True,
            }
            for i in range(args.returns)
        ]
        returners["kiosk_mysql.returner"](dict(rets[0], jid="warmup"))  # schema creation outside the timing

        figures = {}
        for name in ("mysql", "kiosk_mysql"):
            started = time.perf_counter()
            for start in range(0, len(events), args.batch):
                returners[f"{name}.event_return"](events[start : start + args.batch])
            figures[(name, "event_return")] = time.perf_counter() - started
            started = time.perf_counter()
            for ret in rets:
                returners[f"{name}.returner"](ret)
            figures[(name, "returner")] = time.perf_counter() - started
        stored = {
            "mysql": (count("salt_events"), count("salt_returns")),
            "kiosk_mysql": (count("kiosk_events"), count("kiosk_returns") - 1),
        }
        print(f"{args.events} events (batches of {args.batch}) and {args.returns} returns, same MariaDB, seconds:")
        for name, label in (("mysql", "saltext-mysql"), ("kiosk_mysql", "kiosk_mysql")):
            print(
                f"  {label:<14} event_return {figures[(name, 'event_return')]:7.3f}   "
                f"returner() {figures[(name, 'returner')]:7.3f}   rows stored {stored[name]}"
            )
        ev = figures[("mysql", "event_return")] / figures[("kiosk_mysql", "event_return")]
        rt = figures[("mysql", "returner")] / figures[("kiosk_mysql", "returner")]
        print(f"  event_return: kiosk_mysql {ev:.1f}x faster (goal >= 5x)")
        print(f"  returner():   kiosk_mysql {rt:.2f}x as fast (goal >= 1x)")
    finally:
        admin([f"DROP DATABASE IF EXISTS {DB}", f"DROP USER IF EXISTS '{USER}'@'127.0.0.1'"])


if __name__ == "__main__":
    main()
