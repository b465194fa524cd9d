"""
Running a script of ``bench/`` from the tests, the way an operator runs it:
``python bench/<script> ...`` from the checkout, with the tests' MariaDB
account as the benchmark's.
"""

import os
import subprocess
import sys

from tests.conftest import MYSQL_PASSWORD, MYSQL_USER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, timeout=600, **env):
    """The finished process of ``bench/<script> args`` (``env``: extra environment variables)."""
    environ = dict(os.environ, KIOSK_BENCH_MYSQL_USER=MYSQL_USER, KIOSK_BENCH_MYSQL_PASSWORD=MYSQL_PASSWORD)
    environ.update(env)
    environ["PYTHONPATH"] = ROOT + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
        cwd=ROOT,
        check=False,
    )


def run_ok(script, *args, timeout=600):
    """The output of a run that ended well and printed exactly one RESULT line."""
    proc = run(script, *args, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1, proc.stdout
    return proc.stdout
