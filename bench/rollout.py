"""
Benchmark: a 100 MB release rolled out to every kiosk of a loopback fleet with
``per_relay`` 1 and 2.

The fleet: a master of masters and two campuses, each with one relay (a
syndic node) and three kiosk minions below it, started from plain config files
(``demo/fleet.py``). First one kiosk installs a release alone: the time of one
kiosk's install, the unit of the goal. Then, for each ``per_relay``, a new
100 MB release is published (staged on the relays, ``rollout=False``) and
rolled out to every kiosk in one wave (``salt-run kiosk_release.rollout``,
wall time), then once more in two waves (``[1, "100%"]``) for the time per
wave. The concurrent fetches on each relay are observed from the kiosks' own
records (each kiosk's last install attempt says when its fetch started and
how long it took, and the rollout says which relay it was told to fetch from).

Goals: ``per_relay`` is never exceeded, and the one-wave rollout takes at most
1.2 x ceil(kiosks per relay / per_relay) x one kiosk's install. Every daemon
of the fleet shares this machine's cores, so per_relay kiosks on each relay
at once are slower than one kiosk alone; the bench also times one round alone
(per_relay kiosks on each relay) and prints the rollout against that
("vs rounds"), which is the rollout's own overhead.

Run: python bench/rollout.py [--size-mb 100] [--kiosks-per-relay 3]
"""

import argparse
import datetime
import json
import math
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "demo"))

from fleet import LocalFleet  # noqa: E402


def campuses(per_relay_kiosks):
    return {
        "east": {
            "timezone": "Asia/Shanghai",
            "broadcast": "127.255.255.255",
            "relays": {"relay-e1": "127.0.0.2"},
            "kiosks": [f"kiosk-e{n}" for n in range(1, per_relay_kiosks + 1)],
        },
        "west": {
            "timezone": "Europe/Berlin",
            "broadcast": "127.255.255.255",
            "relays": {"relay-w1": "127.0.0.3"},
            "kiosks": [f"kiosk-w{n}" for n in range(1, per_relay_kiosks + 1)],
        },
    }


def timed(func):
    started = time.perf_counter()
    value = func()
    return time.perf_counter() - started, value


def fetch_intervals(fleet, kiosks):
    """``{kiosk: (start, end)}`` of each kiosk's last fetch, from its own attempt record."""
    intervals = {}
    for kiosk in kiosks:
        with open(os.path.join(fleet.release_dir(kiosk), ".kiosk-last-attempt.json"), encoding="utf-8") as handle:
            attempt = json.load(handle)
        start = datetime.datetime.fromisoformat(attempt["started"].replace("Z", "+00:00")).timestamp()
        intervals[kiosk] = (start, start + attempt["fetch_seconds"])
    return intervals


def most_at_once(intervals):
    """The largest number of the intervals that overlap at one instant."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in points:
        running += step
        peak = max(peak, running)
    return peak


def new_release(fleet, name, size_mb):
    path = os.path.join(fleet.release_sources(), name)
    with open(path, "wb") as handle:
        for _ in range(size_mb):
            handle.write(os.urandom(1024 * 1024))
    return path


def rollout(fleet, version, path, *args):
    published = fleet.cli("salt-run", "kiosk_release.publish", version, path, "rollout=False", "timeout=600")
    assert isinstance(published, dict) and "staging" in published, published
    assert sorted(published["staging"]["staged"]) == sorted(fleet.relays), published["staging"]
    seconds, report = timed(lambda: fleet.cli("salt-run", "kiosk_release.rollout", version, "timeout=600", *args))
    assert isinstance(report, dict) and report.get("status") == "done", report
    return seconds, report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--kiosks-per-relay", type=int, default=3)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="kiosk-bench-rollout-")
    fleet = LocalFleet(workdir, campuses(args.kiosks_per_relay))
    kiosks = fleet.kiosks
    print(f"starting a master of masters, 2 relays and {len(kiosks)} kiosks in {workdir} ...")
    fleet.start()
    try:
        csv = os.path.join(workdir, "inventory.csv")
        with open(csv, "w", encoding="utf-8") as handle:
            handle.write("code,minion_id,campus,groups,ip,mac,vnc_port\n")
            for campus, spec in fleet.campuses.items():
                for kiosk in spec["kiosks"]:
                    handle.write(f"{kiosk.upper()},{kiosk},{campus},,,,\n")
        fleet.cli("salt-run", "kiosk_inventory.import_csv", csv)

        path = new_release(fleet, "ui-1.bin", args.size_mb)
        one, report = rollout(fleet, "1.0.0", path, "target=id:kiosk-e1")
        assert report["installed"] == ["kiosk-e1"], report
        print(f"\none kiosk's install of {args.size_mb} MiB (salt-run kiosk_release.rollout, wall): {one:.2f} s")

        version = 1
        round_time = {}
        for per_relay in (1, 2):
            # One round alone: per_relay kiosks on each relay at once (the machine's cores are shared by all).
            version += 1
            path = new_release(fleet, f"ui-{version}.bin", args.size_mb)
            glob = "kiosk-?1" if per_relay == 1 else f"kiosk-?[1-{per_relay}]"
            round_time[per_relay], report = rollout(
                fleet, f"{version}.0.0", path, f"target=id:{glob}", f"per_relay={per_relay}"
            )
            assert len(report["installed"]) == per_relay * len(fleet.relays), report
        print(
            "one round alone (per_relay kiosks on each relay at once, wall): "
            + ", ".join(f"per_relay {p}: {t:.2f} s" for p, t in round_time.items())
        )

        print(f"\n{len(kiosks)} kiosks, {args.kiosks_per_relay} per relay, {args.size_mb} MiB release:")
        print(
            f"{'per_relay':>9} {'wall s':>8} {'goal s':>8} {'ratio':>6} {'vs rounds':>9} "
            f"{'max fetches per relay':>24} {'per wave s':>16}"
        )
        failures = []
        for per_relay in (1, 2):
            version += 1
            path = new_release(fleet, f"ui-{version}.bin", args.size_mb)
            wall, report = rollout(fleet, f"{version}.0.0", path, f"per_relay={per_relay}")
            assert sorted(report["installed"]) == sorted(kiosks), report
            intervals = fetch_intervals(fleet, kiosks)
            peaks = {}
            for relay, address in fleet.relays.items():
                mine = [intervals[k] for k, info in report["kiosks"].items() if info["relay"] == address]
                assert len(mine) == args.kiosks_per_relay, (relay, report["kiosks"])
                peaks[relay] = most_at_once(mine)
            rounds = math.ceil(args.kiosks_per_relay / per_relay)
            goal = 1.2 * rounds * one
            version += 1
            path = new_release(fleet, f"ui-{version}.bin", args.size_mb)
            waved, report = rollout(fleet, f"{version}.0.0", path, f"per_relay={per_relay}", 'waves=[1, "100%"]')
            per_wave = []
            intervals = fetch_intervals(fleet, kiosks)
            for wave in sorted({info["wave"] for info in report["kiosks"].values()}):
                members = [intervals[k] for k, info in report["kiosks"].items() if info["wave"] == wave]
                per_wave.append(max(end for _, end in members) - min(start for start, _ in members))
            print(
                f"{per_relay:>9} {wall:8.2f} {goal:8.2f} {wall / (goal / 1.2):6.2f} "
                f"{wall / (rounds * round_time[per_relay]):9.2f} "
                f"{', '.join(f'{r} {p}' for r, p in peaks.items()):>24} "
                f"{' / '.join(f'{s:.1f}' for s in per_wave):>16}"
            )
            if max(peaks.values()) > per_relay:
                failures.append(f"per_relay {per_relay} exceeded: {peaks}")
            if wall > goal:
                failures.append(f"per_relay {per_relay}: {wall:.2f} s over the goal {goal:.2f} s")
        print("\nratio: wall time / (ceil(kiosks per relay / per_relay) x one kiosk's install); goal <= 1.2")
        print("vs rounds: wall time / (ceil(kiosks per relay / per_relay) x one round alone at that per_relay)")
        print("per wave: fetches of the two-wave rollout [1, '100%'], first start to last end")
        for failure in failures:
            print(f"GOAL MISSED: {failure}")
        return 1 if failures else 0
    finally:
        fleet.stop(report=lambda _line: None)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
