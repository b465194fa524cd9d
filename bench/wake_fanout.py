"""
Benchmark: Wake-on-LAN fan-out for 1,000 kiosks over two campuses with two
relays each, through the real master of masters -> syndic -> relay minion tree
(the same loopback fleet as the demo, embedded SQLite store).

Measures the time from the ``salt-run kiosk_power.wake '*'`` call to the last
magic packet captured, and the magic packets captured per kiosk (expected:
relays x repeat = 2 x 3 = 6). Goal: every kiosk woken by every live relay of
its campus in under 10 s.

Run: python bench/wake_fanout.py [--kiosks 1000] [--runs 3]
"""

import argparse
import collections
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "demo"))

from capture import PacketCapture  # noqa: E402
from fleet import LocalFleet  # noqa: E402

CAMPUSES = {
    "east": {
        "timezone": "Asia/Shanghai",
        "broadcast": "127.255.255.255",
        "relays": {"relay-e1": "127.0.0.2", "relay-e2": "127.0.0.4"},
        "kiosks": [],
    },
    "west": {
        "timezone": "Europe/Berlin",
        "broadcast": "127.255.255.255",
        "relays": {"relay-w1": "127.0.0.3", "relay-w2": "127.0.0.5"},
        "kiosks": [],
    },
}


def inventory(path, count):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("code,minion_id,campus,groups,ip,mac,vnc_port\n")
        for index in range(count):
            campus = "east" if index % 2 == 0 else "west"
            mac = "02:4b:%02x:%02x:%02x:%02x" % (index >> 24 & 255, index >> 16 & 255, index >> 8 & 255, index & 255)
            handle.write(
                f"K{index:05d},bench-kiosk-{index:05d},{campus},bench,10.99.{index // 250}.{index % 250 + 1},{mac},5900\n"
            )


def one_run(fleet, repeat):
    capture = PacketCapture()
    try:
        started = time.monotonic()
        result = fleet.cli(
            "salt-run", "kiosk_power.wake", "*", f"port={capture.port}", f"repeat={repeat}", "timeout=30"
        )
        returned = time.monotonic()
        packets = capture.settle(quiet=1.0)
    finally:
        capture.close()
    per_mac = collections.Counter(data[6:12].hex(":") for _t, data, _s in packets if len(data) == 102)
    per_sender = collections.Counter((src, data[6:12].hex(":")) for _t, data, src in packets if len(data) == 102)
    senders = collections.Counter(src for _t, _d, src in packets)
    last = max(t for t, _d, _s in packets) - started if packets else float("nan")
    return result, returned - started, last, per_mac, senders, per_sender


def main():
    parser = argparse.ArgumentParser(description="Wake-on-LAN fan-out benchmark")
    parser.add_argument("--kiosks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="salt-kiosk-bench-")
    fleet = LocalFleet(workdir, CAMPUSES)
    try:
        t0 = time.time()
        fleet.start()
        print(f"fleet up in {time.time() - t0:.0f}s: master of masters + 4 relays (2 per campus)")
        path = os.path.join(workdir, "inventory.csv")
        inventory(path, args.kiosks)
        summary = fleet.cli("salt-run", "kiosk_inventory.import_csv", path)
        print(f"inventory: {len(summary['added'])} kiosks imported")
        expected = 2 * args.repeat
        lasts, exact_all = [], True
        for run in range(1, args.runs + 1):
            result, returned, last, per_mac, senders, per_sender = one_run(fleet, args.repeat)
            counts = [per_mac.get(entry["mac"], 0) for entry in result["kiosks"].values()]
            complete = sum(1 for c in counts if c >= expected)
            # Exactly ``repeat`` packets from each relay of the kiosk's campus, none from another.
            exact = sum(
                1
                for entry in result["kiosks"].values()
                if per_mac.get(entry["mac"], 0) == expected
                and all(
                    per_sender[(address, entry["mac"])] == args.repeat
                    for address in CAMPUSES[entry["campus"]]["relays"].values()
                )
            )
            exact_all = exact_all and exact == len(result["kiosks"])
            lasts.append(last)
            print(
                f"run {run}: runner returned after {returned:.2f}s, last packet captured {last:.2f}s after the call; "
                f"kiosks ok {result['ok']}/{len(result['kiosks'])}; packets per kiosk min {min(counts)} "
                f"median {statistics.median(counts):g} max {max(counts)} (expected {expected}); "
                f"kiosks with all {expected}: {complete}; with exactly {args.repeat} from each relay of their campus: "
                f"{exact}; packets by relay address: {dict(sorted(senders.items()))}"
            )
        print(
            f"RESULT kiosks={args.kiosks} relays=4 repeat={args.repeat} "
            f"call-to-last-packet median={statistics.median(lasts):.2f}s max={max(lasts):.2f}s goal<10s, "
            f"exactly repeat per relay per MAC: {'yes' if exact_all else 'NO'} "
            f"{'MET' if max(lasts) < 10 and exact_all else 'MISSED'}"
        )
    finally:
        fleet.stop(report=lambda _line: None)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
