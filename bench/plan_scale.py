"""
Benchmark: a 7-day plan for every kiosk of a large fleet.

10,000 kiosks in 4 campuses (4 time zones) and 200 groups, 1,000 rules
(weekday hours per campus and group, holidays, group and per-kiosk overrides,
some crossing midnight), planned for 7 days with the library the runner uses
(``salt_kiosk.power.schedule.plan``, rules loaded from the embedded SQLite store).
Prints wall time and peak RSS for 10,000 kiosks, and the time for 20,000.
Goal: under 2 s and 500 MB for 10,000 kiosks; 20,000 at most 2.2x the 10,000 time.

Run: python bench/plan_scale.py
"""

import os
import random
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from plan_runner import CAMPUSES, rule_specs  # noqa: E402

from salt_kiosk.db import store  # noqa: E402
from salt_kiosk.power import rules, schedule  # noqa: E402


def make_kiosks(count, rng):
    names = list(CAMPUSES)
    kiosks = []
    for index in range(count):
        groups = sorted({f"g{rng.randrange(200):03d}" for _ in range(rng.randint(1, 3))})
        kiosks.append(
            {"minion_id": f"kiosk-{index:06d}", "code": f"K{index:06d}", "campus": names[index % 4], "groups": groups}
        )
    return kiosks


def make_rules(kstore, count, rng):
    """The rule set of bench/plan_runner.py (its holidays in the planned week), stored at once."""
    rules.add_many(kstore, rule_specs(count, 10000, rng, "r"))


def timed_plan(kiosks, rule_list):
    started = time.perf_counter()
    result = schedule.plan(kiosks, CAMPUSES, rule_list, "off", since="2026-11-30", until="2026-12-07")
    return time.perf_counter() - started, result


def main():
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        kstore = store.open_store({"cachedir": tmp})
        t0 = time.perf_counter()
        make_rules(kstore, 1000, rng)
        print(f"stored 1,000 rules in {time.perf_counter() - t0:.2f}s")
        t0 = time.perf_counter()
        rule_list = rules.load(kstore)
        load_time = time.perf_counter() - t0
        kiosks10 = make_kiosks(10000, rng)
        kiosks20 = make_kiosks(20000, rng)
        best10, transitions = None, 0
        for _ in range(3):
            elapsed, result = timed_plan(kiosks10, rule_list)
            best10 = elapsed if best10 is None else min(best10, elapsed)
            transitions = sum(len(v["transitions"]) for v in result.values())
            del result
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        best20 = min(timed_plan(kiosks20, rule_list)[0] for _ in range(3))
        rss20_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"rules loaded from the store in {load_time:.3f}s")
        print(
            f"10,000 kiosks, 1,000 rules, 7 days: {best10:.2f}s wall (best of 3), {transitions} transitions, peak RSS {rss_mb:.0f} MB"
        )
        print(
            f"20,000 kiosks: {best20:.2f}s wall (best of 3), ratio {best20 / best10:.2f}x, peak RSS {rss20_mb:.0f} MB"
        )
        ok = best10 < 2 and rss_mb < 500 and best20 / best10 <= 2.2
        print(
            f"RESULT plan10k={best10:.2f}s rss={rss_mb:.0f}MB plan20k={best20:.2f}s ratio={best20 / best10:.2f} goal(<2s, <500MB, <=2.2x) {'MET' if ok else 'MISSED'}"
        )
        store.dispose_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
