"""
Benchmark: the power plan of a large fleet through the runner, end to end,
and the writes that fill the store (inventory import, rules).

A master of masters is started from plain config files (``demo/fleet.py``,
four campuses in four time zones, no relay or kiosk minions: only the store
and the runner matter here). Everything below goes through
``salt.runner.RunnerClient`` in-process, as salt-api and ``salt-run`` do:

1. ``kiosk_inventory.import_csv`` of N kiosks (200 groups), then of 10 x N
   rows (``--import-rows``) for the write rate;
2. 1,000 rules with one ``kiosk_power.rule_import`` (then removed with one
   ``kiosk_power.rule_remove`` of the list), and the same rules with one
   ``kiosk_power.rule_add`` per rule (whether a rule costs more as the table
   grows: the first and last tenth);
3. ``kiosk_power.plan '*'`` over 7 days, best of 3, in a fresh process so its
   peak RSS is the plan's own (the process's RSS before the first call is
   printed too), for N and for 2 x N kiosks.

Goals (N = 10,000): the plan under 2 s and 500 MB; 2 x N at most 2.1 x the
time. The store is the master's embedded SQLite file, or MariaDB with
``--mariadb`` (a database of its own on 127.0.0.1:3306, dropped at the end; root
without a password, or KIOSK_BENCH_MYSQL_USER / KIOSK_BENCH_MYSQL_PASSWORD).

Run: python bench/plan_runner.py [--kiosks 10000] [--rules 1000] [--mariadb]
"""

import argparse
import csv
import datetime
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "demo"))
sys.path.insert(0, HERE)

import preflight  # noqa: E402
import scratch_db  # noqa: E402
from fleet import LocalFleet  # noqa: E402

CAMPUSES = {
    "north": {"timezone": "Asia/Shanghai"},
    "south": {"timezone": "Asia/Urumqi"},
    "east": {"timezone": "Europe/Berlin"},
    "west": {"timezone": "America/New_York"},
}

SINCE, UNTIL = "2026-11-30", "2026-12-07"


def campuses():
    return {
        name: {"timezone": spec["timezone"], "broadcast": "127.255.255.255", "relays": {}, "kiosks": []}
        for name, spec in CAMPUSES.items()
    }


def write_csv(path, count, rng, offset=0):
    names = list(CAMPUSES)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["code", "minion_id", "campus", "groups", "ip", "mac", "vnc_port"])
        for index in range(offset, offset + count):
            groups = ";".join(sorted({f"g{rng.randrange(200):03d}" for _ in range(rng.randint(1, 3))}))
            out.writerow(
                [
                    f"K{index:06d}",
                    f"kiosk-{index:06d}",
                    names[index % 4],
                    groups,
                    f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}",
                    f"02:00:{index >> 24 & 255:02x}:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}",
                    5900 + index % 1000,
                ]
            )


def rule_specs(count, kiosks, rng, prefix, monday=datetime.date(2026, 11, 30)):
    """
    ``count`` rules shaped like plan_scale.py's: campus and group hours, lunch
    breaks, overrides, holidays (in the week of ``monday``).
    """
    specs = []
    holidays = f"{monday + datetime.timedelta(days=2)},{monday + datetime.timedelta(days=3)}"
    closed = f"{monday + datetime.timedelta(days=1)}..{monday + datetime.timedelta(days=7)}"

    def add(**fields):
        specs.append({"name": f"{prefix}{len(specs):04d}", **fields})

    for campus in CAMPUSES:
        add(state="on", days="mon-fri", start="07:30", end="18:00", target=f"campus:{campus}")
        add(state="on", days="sat", start="08:00", end="12:00", target=f"campus:{campus}")
    for group in range(200):
        add(
            state="on",
            days="mon-fri",
            start=f"{rng.randint(6, 9):02d}:{rng.choice((0, 30)):02d}",
            end=f"{rng.randint(17, 21):02d}:00",
            target=f"group:g{group:03d}",
            priority=1,
        )
        add(state="off", days=rng.choice(("wed", "thu", "fri")), start="12:00", end="13:00",
            target=f"group:g{group:03d}", priority=2)  # fmt: skip
    while len(specs) < count - 20:
        if rng.random() < 0.5:
            add(state="on", days=rng.choice(("fri", "sat")), start="22:00", end="02:00",
                target=f"id:kiosk-{rng.randrange(kiosks):06d}", priority=5)  # fmt: skip
        else:
            add(state="off", dates=holidays, start="00:00", end="24:00",
                target=f"group:g{rng.randrange(200):03d}", priority=10)  # fmt: skip
    while len(specs) < count:
        add(state="off", dates=closed, start="00:00", end="24:00",
            target=f"id:kiosk-{rng.randrange(kiosks):06d}*", priority=20)  # fmt: skip
    return specs


def client(conf):
    import salt.config  # pylint: disable=import-outside-toplevel
    import salt.runner  # pylint: disable=import-outside-toplevel

    opts = salt.config.master_config(os.path.join(conf, "master"))
    return salt.runner.RunnerClient(opts)


def run(runner, fun, *args, **kwargs):
    result = runner.cmd(fun, arg=list(args), kwarg=kwargs, print_event=False, full_return=False)
    if isinstance(result, dict) and result.get("error"):
        raise RuntimeError(f"{fun}: {result['error']}")
    if isinstance(result, str) and ("Exception" in result or "Error" in result):
        raise RuntimeError(f"{fun}: {result[:2000]}")
    return result


def timed(func, *args, **kwargs):
    started = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - started, result


def memory_mb(field):
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB: unlike ``ru_maxrss`` the peak is this
    program's own, not its parent's at the fork before the exec."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} is not in /proc/self/status")


def plan_child(conf, target, queue):
    """In a fresh process: RSS before, best of 3 plans, peak RSS, kiosks planned."""
    runner = client(conf)
    run(runner, "kiosk_power.engine_status")  # loads the runner modules and opens the store
    before = memory_mb("VmRSS")
    best, planned = None, 0
    for _ in range(3):
        elapsed, result = timed(run, runner, "kiosk_power.plan", target, since=SINCE, until=UNTIL)
        planned = len(result)
        best = elapsed if best is None else min(best, elapsed)
        del result
    runner.destroy()
    queue.put({"best": best, "before": before, "peak": memory_mb("VmHWM"), "kiosks": planned})


def measure_plan(conf, target="*"):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=plan_child, args=(conf, target, queue))
    proc.start()
    found = queue.get(timeout=900)
    proc.join()
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, default=10000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument(
        "--import-rows", type=int, default=None, help="rows of the write-rate import (default 10 x kiosks)"
    )
    parser.add_argument(
        "--mariadb", action="store_true", help="use a MariaDB store instead of the embedded SQLite file"
    )
    args = parser.parse_args()
    if args.kiosks < 10 or args.rules < 430:
        parser.error(f"--kiosks {args.kiosks} / --rules {args.rules}: at least 10 kiosks and 430 rules")
    if args.mariadb and preflight.refuse(preflight.mariadb):
        return 2
    import_rows = args.import_rows or 10 * args.kiosks
    rng = random.Random(7)
    workdir = tempfile.mkdtemp(prefix="kiosk-plan-runner-")
    settings, database = {}, None
    if args.mariadb:
        database, settings["db"] = scratch_db.create("kiosk_plan_bench")
    fleet = LocalFleet(workdir, campuses(), kiosk_settings=settings)
    runner = None
    try:
        fleet.start(timeout=120)
        conf = fleet.conf("mom")
        runner = client(conf)
        first = os.path.join(workdir, "fleet.csv")
        write_csv(first, args.kiosks, rng)
        elapsed, summary = timed(run, runner, "kiosk_inventory.import_csv", first)
        print(f"import_csv of {args.kiosks} new kiosks: {elapsed:.2f} s ({len(summary['added'])} added)")
        big = os.path.join(workdir, "big.csv")
        write_csv(big, import_rows, random.Random(11), offset=10**6)
        elapsed, summary = timed(run, runner, "kiosk_inventory.import_csv", big)
        print(f"import_csv of {import_rows} more rows: {elapsed:.2f} s, {import_rows / elapsed:.0f} rows/s")
        elapsed, summary = timed(run, runner, "kiosk_inventory.import_csv", big, replace=False)
        print(f"the same {import_rows} rows again (all unchanged): {elapsed:.2f} s")
        started = time.perf_counter()
        run(runner, "kiosk_inventory.import_csv", first, replace=True)  # back to N kiosks
        print(f"import_csv replace=True back to {args.kiosks} kiosks: {time.perf_counter() - started:.2f} s")

        batch = rule_specs(args.rules, args.kiosks, random.Random(3), "batch-")
        batch_time, _ = timed(run, runner, "kiosk_power.rule_import", batch)
        elapsed, _ = timed(run, runner, "kiosk_power.rule_remove", [spec["name"] for spec in batch])
        print(
            f"{args.rules} rules, one rule_import: {batch_time:.2f} s (removed with one rule_remove in {elapsed:.2f} s)"
        )
        started, marks = time.perf_counter(), []
        for spec in rule_specs(args.rules, args.kiosks, random.Random(3), "one-"):
            fields = dict(spec)
            run(runner, "kiosk_power.rule_add", fields.pop("name"), **fields)
            marks.append(time.perf_counter())
        one_time = marks[-1] - started
        tenth = len(marks) // 10
        print(
            f"{args.rules} rules, one rule_add each: {one_time:.2f} s ({one_time / args.rules * 1000:.1f} ms a rule; "
            f"first tenth {(marks[tenth - 1] - started) / tenth * 1000:.1f} ms, last tenth "
            f"{(marks[-1] - marks[-tenth - 1]) / tenth * 1000:.1f} ms a rule); rule_import is "
            f"{one_time / batch_time:.0f}x faster"
        )

        print(f"plan '*' {SINCE}..{UNTIL} through RunnerClient, fresh process each:")
        n10 = measure_plan(conf)
        print(f"  {n10['kiosks']} kiosks, {args.rules} rules: {n10['best']:.2f} s (best of 3), "
              f"peak RSS {n10['peak']:.0f} MB (before the first plan {n10['before']:.0f} MB)")  # fmt: skip
        second = os.path.join(workdir, "fleet2.csv")
        write_csv(second, args.kiosks, random.Random(5), offset=args.kiosks)
        run(runner, "kiosk_inventory.import_csv", second)
        n20 = measure_plan(conf)
        ratio = n20["best"] / n10["best"]
        print(f"  {n20['kiosks']} kiosks: {n20['best']:.2f} s (best of 3), {ratio:.2f}x, peak RSS {n20['peak']:.0f} MB")
        ok = n10["best"] < 2 and n10["peak"] < 500 and ratio <= 2.1
        print(
            f"RESULT plan{n10['kiosks']}={n10['best']:.2f}s rss={n10['peak']:.0f}MB "
            f"plan{n20['kiosks']}={n20['best']:.2f}s ratio={ratio:.2f} goal(<2s, <500MB, <=2.1x) "
            f"{'MET' if ok else 'MISSED'}"
        )
    finally:
        if runner is not None:
            runner.destroy()
        fleet.stop(report=lambda _line: None)
        scratch_db.drop(database)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
