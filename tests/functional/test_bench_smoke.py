"""
The scale benchmarks at a small size, so that the scripts keep working: each
runs to its end, prints its figures and its RESULT line and leaves nothing
behind (its own database is dropped). The figures of a small run say nothing
about the goals; the full runs are in README.md.
"""

import os
import subprocess
import sys

import pymysql
import pytest

from tests.conftest import MYSQL_PASSWORD, MYSQL_USER

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_bench(script, *args, timeout=600):
    env = dict(os.environ, KIOSK_BENCH_MYSQL_USER=MYSQL_USER, KIOSK_BENCH_MYSQL_PASSWORD=MYSQL_PASSWORD)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1, proc.stdout
    return proc.stdout


def databases(prefix):
    conn = pymysql.connect(host="127.0.0.1", user=MYSQL_USER, password=MYSQL_PASSWORD)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW DATABASES")
            return {name for (name,) in cursor.fetchall() if name.startswith(prefix)}
    finally:
        conn.close()


def test_plan_runner_smoke():
    out = run_bench("plan_runner.py", "--kiosks", "200", "--rules", "430", "--import-rows", "500")
    assert "import_csv of 500 more rows" in out and "430 rules, one rule_import" in out
    assert "200 kiosks, 430 rules:" in out and "400 kiosks:" in out


@pytest.mark.parametrize("where", ["sqlite", "mariadb"])
def test_engine_replan_smoke(where):
    before = databases("kiosk_replan_bench_")
    out = run_bench(
        "engine_replan.py", "--kiosks", "100", "--rules", "430", *(["--mariadb"] if where == "mariadb" else [])
    )
    assert "100 kiosks, 430 rules, horizon 48 h:" in out and "re-plan after 430 more rules" in out
    assert databases("kiosk_replan_bench_") == before


def test_returner_smoke():
    before = databases("kiosk_bench_")
    out = run_bench("returner.py", "--returns", "400", "--events", "4000", "--jobs", "50")
    assert "rows-lost=none" in out and "errors=none" in out
    assert "rows stored (400, 6000)" in out  # 4,000 events by both masters, then 2,000 by one alone
    assert databases("kiosk_bench_") == before
