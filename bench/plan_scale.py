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

import random
import resource
import sys
import tempfile
import time

from salt_kiosk.db import store
from salt_kiosk.power import rules, schedule

CAMPUSES = {
    "north": {"timezone": "Asia/Shanghai"},
    "south": {"timezone": "Asia/Urumqi"},
    "east": {"timezone": "Europe/Berlin"},
    "west": {"timezone": "America/New_York"},
}


def make_kiosks(count, rng):
    names = list(CAMPUSES)
    kiosks = []
    for index in range(count):
        groups = sorted({f"g{rng.randrange(200):03d}" for _ in range(rng.randint(1, 3))})
        kiosks.append(
            {"minion_id": f"kiosk-{index:05d}", "code": f"K{index:05d}", "campus": names[index % 4], "groups": groups}
        )
    return kiosks


def make_rules(kstore, count, rng):
    made = 0

    def add(**fields):
        nonlocal made
        rules.add(kstore, f"r{made:04d}", **fields)
        made += 1

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
        add(
            state="off",
            days=rng.choice(("wed", "thu", "fri")),
            start="12:00",
            end="13:00",
            target=f"group:g{group:03d}",
            priority=2,
        )
    while made < count - 20:
        kind = rng.random()
        if kind < 0.5:
            add(
                state="on",
                days=rng.choice(("fri", "sat")),
                start="22:00",
                end="02:00",
                target=f"id:kiosk-{rng.randrange(10000):05d}",
                priority=5,
            )
        else:
            add(
                state="off",
                dates=["2026-12-02", "2026-12-03"],
                start="00:00",
                end="24:00",
                target=f"group:g{rng.randrange(200):03d}",
                priority=10,
            )
    while made < count:
        add(
            state="off",
            dates="2026-12-01..2026-12-07",
            start="00:00",
            end="24:00",
            target=f"id:kiosk-{rng.randrange(10000):04d}*",
            priority=20,
        )


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
