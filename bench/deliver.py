"""
Benchmark: delivering a 100 MB file from ``salt://``.

In one run, against a real salt-master (a syndic node of the loopback fleet),
with every function executed in-process by a ``salt.client.Caller`` so that the
figures are the functions' own times, not job dispatch:

- ``kiosk.deliver``: streams the file, md5 while streaming, atomic rename;
- Salt's ``file.managed`` with ``source_hash`` (for salt:// sources Salt does
  not check source_hash against what it fetched, so it verifies nothing end to
  end; it also copies through the minion's file cache);
- the floor: plain ``cp.get_file`` plus one md5 pass over the result;
- ``kiosk.deliver`` again with the file unchanged (nothing transferred),
  against one md5 pass over the file.

Goals: kiosk.deliver faster than file.managed and within 1.25x of the floor;
the unchanged repeat within 1.2x of one md5 pass.

Then the two-hop path of a 100 MB release through the syndic on the same
fleet: ``salt-run kiosk_release.publish ... rollout=False`` (hop 1: master of
masters -> relay, md5 checked) and ``salt-run kiosk_release.rollout`` (hop 2:
relay -> kiosk, md5 checked again), wall time of each command.

Run: python bench/deliver.py [--size-mb 100] [--runs 3]
"""

import argparse
import glob
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "demo"))

from fleet import BIN, LocalFleet, write_config  # noqa: E402

from salt_kiosk import topology  # noqa: E402

CAMPUSES = {
    "east": {
        "timezone": "Asia/Shanghai",
        "broadcast": "127.255.255.255",
        "relays": {"relay-e1": "127.0.0.2"},
        "kiosks": ["bench-kiosk"],
    },
}


def md5_pass(path):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def timed(func):
    started = time.perf_counter()
    value = func()
    return time.perf_counter() - started, value


def make_caller(fleet, workdir):
    """An in-process minion of relay-e1's master (auto-accepted)."""
    import salt.client  # pylint: disable=import-outside-toplevel
    import salt.config  # pylint: disable=import-outside-toplevel

    root = os.path.join(workdir, "bench-caller")
    config = {
        "id": "bench-caller",
        "root_dir": root,
        "pki_dir": os.path.join(root, "pki"),
        "cachedir": os.path.join(root, "cache"),
        "sock_dir": os.path.join(root, "sock"),
        "log_file": os.path.join(root, "minion.log"),
        "user": fleet.user,
    }
    config.update(topology.minion("127.0.0.2", fleet.relay_ret["relay-e1"], fleet.mom_pub))
    path = os.path.join(root, "conf", "minion")
    write_config(path, config)
    # salt-call once: it prepares the directories and gets the key accepted.
    subprocess.run(
        [os.path.join(BIN, "salt-call"), "-c", os.path.dirname(path), "test.ping"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    opts = salt.config.minion_config(path)
    return salt.client.Caller(mopts=opts), opts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="kiosk-bench-deliver-")
    fleet = LocalFleet(workdir, CAMPUSES)
    print(f"starting a master of masters, relay-e1 (syndic node) and bench-kiosk in {workdir} ...")
    fleet.start()
    try:
        root = fleet.release_root("relay-e1")
        os.makedirs(os.path.join(root, "bench"), exist_ok=True)
        big = os.path.join(root, "bench", "big.bin")
        with open(big, "wb") as handle:
            for _ in range(args.size_mb):
                handle.write(os.urandom(1024 * 1024))
        md5 = md5_pass(big)
        size = os.path.getsize(big)
        print(f"source: salt://bench/big.bin, {size / 2**20:.0f} MiB, md5 {md5}")
        caller, opts = make_caller(fleet, workdir)
        out = os.path.join(workdir, "out")
        os.makedirs(out)
        # Warm the page cache and the master's hash cache so no contender pays for them.
        md5_pass(big)
        caller.cmd("cp.hash_file", "salt://bench/big.bin")

        figures = {"kiosk.deliver": [], "file.managed": [], "floor": [], "md5 pass": [], "deliver unchanged": []}
        for run in range(args.runs):
            dest = os.path.join(out, f"deliver-{run}.bin")
            seconds, ret = timed(lambda d=dest: caller.cmd("kiosk.deliver", "salt://bench/big.bin", d, md5))
            assert ret["changed"] and md5_pass(dest) == md5, ret
            figures["kiosk.deliver"].append(seconds)
            seconds, ret = timed(lambda d=dest: caller.cmd("kiosk.deliver", "salt://bench/big.bin", d, md5))
            assert ret["changed"] is False, ret
            figures["deliver unchanged"].append(seconds)
            figures["md5 pass"].append(timed(lambda d=dest: md5_pass(d))[0])
            os.unlink(dest)

            dest = os.path.join(out, f"managed-{run}.bin")
            shutil.rmtree(os.path.join(opts["cachedir"], "files"), ignore_errors=True)
            seconds, ret = timed(
                lambda d=dest: caller.cmd(
                    "state.single", "file.managed", name=d, source="salt://bench/big.bin", source_hash=f"md5={md5}"
                )
            )
            assert next(iter(ret.values()))["result"] is True, ret
            figures["file.managed"].append(seconds)
            os.unlink(dest)

            dest = os.path.join(out, f"floor-{run}.bin")
            seconds, _ = timed(lambda d=dest: (caller.cmd("cp.get_file", "salt://bench/big.bin", d), md5_pass(d)))
            assert md5_pass(dest) == md5
            figures["floor"].append(seconds)
            os.unlink(dest)

        med = {name: statistics.median(values) for name, values in figures.items()}
        print(f"\n{size / 2**20:.0f} MiB from salt://, median of {args.runs} runs (in-process, seconds):")
        for name, value in med.items():
            print(f"  {name:<20} {value:7.3f}   ({', '.join(f'{v:.3f}' for v in figures[name])})")
        print(f"  kiosk.deliver / file.managed   {med['kiosk.deliver'] / med['file.managed']:.2f}x (goal < 1)")
        print(f"  kiosk.deliver / floor          {med['kiosk.deliver'] / med['floor']:.2f}x (goal <= 1.25)")
        print(f"  unchanged repeat / md5 pass    {med['deliver unchanged'] / med['md5 pass']:.2f}x (goal <= 1.2)")

        # Two hops through the syndic, as operators run them.
        csv = os.path.join(workdir, "inventory.csv")
        with open(csv, "w", encoding="utf-8") as handle:
            handle.write("code,minion_id,campus,groups,ip,mac,vnc_port\nB1,bench-kiosk,east,,,,\n")
        fleet.cli("salt-run", "kiosk_inventory.import_csv", csv)
        release = os.path.join(fleet.release_sources(), "kiosk-bench.bin")  # kiosk:release_sources
        shutil.copy(big, release)
        print(f"\ntwo hops, {size / 2**20:.0f} MiB release (wall time of each salt-run, seconds):")
        for run in range(args.runs):
            version = f"1.0.{run}"
            with open(release, "r+b") as handle:  # a different release each time
                handle.write(os.urandom(16))
            hop1, ret = timed(
                lambda v=version: fleet.cli("salt-run", "kiosk_release.publish", v, release, "rollout=False")
            )
            assert ret["staging"]["staged"] == ["relay-e1"], ret
            hop2, ret = timed(lambda: fleet.cli("salt-run", "kiosk_release.rollout"))
            assert ret["installed"] == ["bench-kiosk"], ret
            installed = glob.glob(os.path.join(fleet.release_dir("bench-kiosk"), version, "*"))
            assert installed and md5_pass(installed[0]) == md5_pass(release)
            print(f"  {version}: hop 1 (publish + stage on relay) {hop1:6.2f}   hop 2 (rollout to kiosk) {hop2:6.2f}")
    finally:
        fleet.stop(report=lambda _line: None)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
