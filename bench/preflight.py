"""
What a benchmark needs from the machine, checked before anything starts: each
check returns ``None`` or a sentence naming what is missing and how to get it.
:func:`refuse` prints the failures and gives the exit status (2).
"""

import importlib.util
import os
import shutil
import subprocess
import sys

import scratch_db


def nmap():
    """nmap on the PATH (the sweeps run it)."""
    if shutil.which("nmap"):
        return None
    return "nmap is not installed (the sweep runs it): apt-get install nmap"


def netns():
    """The right to make a network namespace (root or CAP_SYS_ADMIN, and iproute2's ip)."""
    if not shutil.which("ip"):
        return "the ip command is missing (the simulated kiosks live in a network namespace): apt-get install iproute2"
    name = f"kiosk-preflight-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return (
            f"no right to make a network namespace ('ip netns add' said: {made.stderr.strip() or made.returncode}); "
            "run the benchmark as root (or with CAP_SYS_ADMIN and CAP_NET_ADMIN)"
        )
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    return None


def mariadb():
    """A MariaDB on 127.0.0.1:3306 that the benchmark's account can log in to."""
    try:
        import pymysql  # pylint: disable=import-outside-toplevel

        pymysql.connect(
            host="127.0.0.1", user=scratch_db.MYSQL_USER, password=scratch_db.MYSQL_PASSWORD, connect_timeout=5
        ).close()
    except Exception as exc:  # pylint: disable=broad-except
        return (
            f"no MariaDB usable on 127.0.0.1:3306 as {scratch_db.MYSQL_USER!r} ({exc}); install and start it "
            "(apt-get install mariadb-server), or name an account that may create databases and users in "
            "KIOSK_BENCH_MYSQL_USER / KIOSK_BENCH_MYSQL_PASSWORD"
        )
    return None


def saltext_mysql():
    """saltext-mysql, the peer of the returner benchmark."""
    if importlib.util.find_spec("saltext.mysql") is None:
        return "saltext-mysql is not installed (the peer returner): pip install '.[bench]'"
    return None


def refuse(*checks):
    """Run ``checks``; print what fails to stderr and return 2, or return 0 when all pass."""
    failures = [message for message in (check() for check in checks) if message]
    for message in failures:
        print(f"cannot run: {message}", file=sys.stderr)
    return 2 if failures else 0
