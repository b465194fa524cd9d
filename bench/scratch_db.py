"""
A MariaDB database of a benchmark's own on 127.0.0.1:3306, created and dropped
by the benchmark: root without a password, or the account in
KIOSK_BENCH_MYSQL_USER / KIOSK_BENCH_MYSQL_PASSWORD (it must be allowed to
create and drop databases).
"""

import os

MYSQL_USER = os.environ.get("KIOSK_BENCH_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("KIOSK_BENCH_MYSQL_PASSWORD", "")


def _execute(sql):
    import pymysql  # pylint: disable=import-outside-toplevel

    conn = pymysql.connect(host="127.0.0.1", user=MYSQL_USER, password=MYSQL_PASSWORD, autocommit=True)
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def create(prefix):
    """Create ``<prefix>_<pid>``; return ``(name, SQLAlchemy URL)``."""
    name = f"{prefix}_{os.getpid()}"
    _execute(f"CREATE DATABASE {name}")
    return name, f"mysql+pymysql://{MYSQL_USER}:{MYSQL_PASSWORD}@127.0.0.1:3306/{name}"


def drop(name):
    """Drop the database ``name`` (made by :func:`create`) when there is one."""
    if name:
        _execute(f"DROP DATABASE IF EXISTS {name}")
