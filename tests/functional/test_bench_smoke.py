"""
The scale benchmarks at a small size, so that the scripts keep working: each
runs to its end, prints its figures and its RESULT line and leaves nothing
behind (its own database is dropped). The figures of a small run say nothing
about the goals; the full runs are in README.md.
"""

import pymysql
import pytest

from tests import benchrun
from tests.conftest import MYSQL_PASSWORD, MYSQL_USER

run_bench = benchrun.run_ok


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


def test_plan_scale_smoke():
    out = run_bench("plan_scale.py")
    assert "RESULT plan10k=" in out and "plan20k=" in out


def test_sweep_smoke():
    # A network namespace with 64 addresses, every other one present (root and nmap, as tests/functional/test_sweep.py).
    out = run_bench("sweep.py", "--hosts", "64", "--skip-per-host")
    assert "RESULT sweep=" in out and "bare=" in out
    assert "addresses: 64, present: 32" in out and "up 32, down 32" in out, out
    assert "bare nmap -sn -n -iL:" in out and out.rstrip().endswith(("MET", "MISSED"))


def test_returner_smoke():
    before = databases("kiosk_bench_")
    out = run_bench("returner.py", "--returns", "400", "--events", "4000", "--jobs", "50")
    assert "rows-lost=none" in out and "errors=none" in out
    assert "rows stored (400, 6000)" in out  # 4,000 events by both masters, then 2,000 by one alone
    assert databases("kiosk_bench_") == before


@pytest.mark.parametrize(
    "script,args",
    [("returner.py", ["--returns", "10"]), ("engine_replan.py", ["--mariadb"]), ("plan_runner.py", ["--mariadb"])],
)
def test_a_database_it_cannot_use_is_named_before_anything_starts(script, args):
    proc = benchrun.run(
        script, *args, timeout=120, KIOSK_BENCH_MYSQL_USER="kiosk_no_such_account", KIOSK_BENCH_MYSQL_PASSWORD="x"
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no MariaDB usable on 127.0.0.1:3306 as 'kiosk_no_such_account'" in proc.stderr
    assert "KIOSK_BENCH_MYSQL_USER" in proc.stderr
    assert "RESULT" not in proc.stdout


def test_console_render_smoke():
    # Headless chromium drawing the console from a stand-in salt-api (the real one: tests/integration/test_console.py).
    out = run_bench("console_render.py", "--kiosks", "300", "--plan-kiosks", "50", "--repeat", "1")
    assert "fleet view of 300 kiosks" in out and "plan of 50 kiosks" in out
    assert "RESULT kiosks=300 plan-kiosks=50" in out
