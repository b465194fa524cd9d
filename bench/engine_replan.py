"""
Benchmark: the scheduler engine's re-plan for a large fleet.

10,000 kiosks in 4 campuses (4 time zones) and 200 groups, 1,000 rules (the
rule set of bench/plan_runner.py, its holidays in the current week), in the
embedded SQLite store or in MariaDB (``--mariadb``). The engine
(``salt_kiosk.power.engine.Engine`` with APScheduler and its job store in the
same database, as the ``kiosk_scheduler`` engine runs it) is started: the
first plan writes every transition job of the horizon (48 h). Then timed:

- a re-plan with nothing changed;
- a re-plan after a campus rule moved (every kiosk of the campus changes);
- a re-plan after a rule of one kiosk moved;
- a re-plan after a thousand rules were added at once (``rule_import``).

Nothing is sent: the publisher is a stub and no transition falls due.
Goal: a re-plan under 2 s.

Run: python bench/engine_replan.py [--kiosks 10000] [--rules 1000] [--mariadb]
"""

import argparse
import datetime
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import preflight  # noqa: E402
import scratch_db  # noqa: E402
from plan_runner import CAMPUSES, rule_specs, write_csv  # noqa: E402

from salt_kiosk import inventory  # noqa: E402
from salt_kiosk.db import store  # noqa: E402
from salt_kiosk.power import engine as scheduler  # noqa: E402
from salt_kiosk.power import rules  # noqa: E402

UTC = datetime.timezone.utc


def timed(func, *args, **kwargs):
    started = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - started, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, default=10000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument(
        "--mariadb", action="store_true", help="use a MariaDB store instead of the embedded SQLite file"
    )
    args = parser.parse_args()
    if args.kiosks < 10 or args.rules < 430:
        parser.error(f"--kiosks {args.kiosks} / --rules {args.rules}: at least 10 kiosks and 430 rules")
    if args.mariadb and preflight.refuse(preflight.mariadb):
        return 2
    workdir = tempfile.mkdtemp(prefix="kiosk-engine-replan-")
    campuses = {
        name: {"timezone": spec["timezone"], "broadcast": "127.255.255.255", "relays": []}
        for name, spec in CAMPUSES.items()
    }
    # The benchmark owns its database: it creates the schema, as the master of masters does.
    opts = {"cachedir": workdir, "kiosk": {"campuses": campuses, "schema_owner": True}}
    database = None
    if args.mariadb:
        database, opts["kiosk"]["db"] = scratch_db.create("kiosk_replan_bench")
    engine = None
    try:
        kstore = store.open_store(opts)
        path = os.path.join(workdir, "fleet.csv")
        write_csv(path, args.kiosks, random.Random(7))
        inventory.import_csv(kstore, path)
        today = datetime.datetime.now(UTC).date()
        monday = today - datetime.timedelta(days=today.weekday())
        specs = rule_specs(args.rules, args.kiosks, random.Random(3), "r-", monday=monday)
        rules.add_many(kstore, specs)
        now = datetime.datetime.now(UTC).replace(second=0, microsecond=0)
        engine = scheduler.Engine(
            opts,
            grace=600,
            tick=3600,
            sweep_delays=(300, 600, 900),
            publish=lambda _opts, jobs, _timeout: {},
            clock=lambda: now,
        )
        elapsed, _ = timed(engine.start)
        jobs = len([job for job in engine.scheduler.get_jobs() if job.id.startswith(scheduler.POWER_PREFIX)])
        print(f"{args.kiosks} kiosks, {args.rules} rules, horizon 48 h: {jobs} transition jobs")
        print(f"  engine start (lease, first plan writing every job): {elapsed:.2f} s")
        figures = {}
        elapsed, outcome = timed(engine.replan, "bench")
        figures["unchanged"] = elapsed
        print(f"  re-plan, nothing changed: {elapsed:.2f} s ({outcome})")
        rules.update(kstore, "r-0000", end="18:30")
        elapsed, outcome = timed(engine.replan, "bench")
        figures["campus rule"] = elapsed
        print(f"  re-plan after a campus rule moved: {elapsed:.2f} s ({outcome})")
        one = next(spec["name"] for spec in specs if spec["target"].startswith("id:"))
        rules.update(kstore, one, start="21:30")
        elapsed, outcome = timed(engine.replan, "bench")
        figures["one kiosk's rule"] = elapsed
        print(f"  re-plan after one kiosk's rule moved: {elapsed:.2f} s ({outcome})")
        more = rule_specs(args.rules, args.kiosks, random.Random(4), "more-", monday=monday)
        rules.add_many(kstore, more)
        elapsed, outcome = timed(engine.replan, "bench")
        figures[f"{args.rules} more rules"] = elapsed
        print(f"  re-plan after {args.rules} more rules: {elapsed:.2f} s ({outcome})")
        worst = max(figures.values())
        print(
            f"RESULT replan{args.kiosks}: worst {worst:.2f}s ({max(figures, key=figures.get)}) "
            f"goal(<2s) {'MET' if worst < 2 else 'MISSED'}"
        )
    finally:
        if engine is not None:
            engine.stop()
        store.dispose_all()
        scratch_db.drop(database)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
