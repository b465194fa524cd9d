"""
Benchmark: one nmap process for the whole list versus per-host scanning.

Creates a network namespace with ``--hosts`` addresses (default 1,024; the
simulated 10,000-kiosk campus: ``--hosts 10000``) of 198.18.0.0/15, every
other one present, on the far side of a veth pair, and times, in the same run:

* ``kiosk.sweep`` (salt_kiosk.node.sweep: python-nmap, one ``nmap -sn -n`` for the list),
* a bare ``nmap -sn -n`` over the same list (``-iL`` from a file),
* python-nmap's ``PortScannerAsync``, one scan per host (32 in flight).

Goal: kiosk.sweep within 1.2x of bare nmap, at least 10x faster than per-host.
Needs root (ip netns) and nmap.

Run: python bench/sweep.py [--hosts 1024] [--skip-per-host]
"""

import argparse
import functools
import ipaddress
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import nmap  # noqa: E402
import preflight  # noqa: E402

from salt_kiosk.node import sweep  # noqa: E402
from tests.netns import namespace  # noqa: E402

COUNT = 1024


def _record(found, host, result):
    # PortScannerAsync runs the callback in its scanning process.
    if result and result.get("nmap", {}).get("scanstats", {}).get("uphosts") == "1":
        found.append(host)


def per_host(hosts, in_flight=32):
    manager = multiprocessing.Manager()
    found = manager.list()
    pending = list(hosts)
    running = []
    while pending or running:
        while pending and len(running) < in_flight:
            scanner = nmap.PortScannerAsync()
            scanner.scan(hosts=pending.pop(), arguments="-sn -n", callback=functools.partial(_record, found))
            running.append(scanner)
        running = [scanner for scanner in running if scanner.still_scanning()]
        time.sleep(0.01)
    up = len(found)
    manager.shutdown()
    return up


def main():
    parser = argparse.ArgumentParser(description="sweep benchmark")
    parser.add_argument("--skip-per-host", action="store_true")
    parser.add_argument("--hosts", type=int, default=COUNT, help=f"addresses swept (default {COUNT}, at most 65,000)")
    args = parser.parse_args()
    if not 2 <= args.hosts <= 65000:
        parser.error(f"--hosts {args.hosts}: accepted 2-65000 (the addresses are in 198.18.0.0/15)")
    status = preflight.refuse(preflight.nmap, preflight.netns)
    if status:
        return status
    # The smallest network of 198.18.0.0/15 that holds the addresses and the namespace's own.
    prefixlen = 32 - (args.hosts + 2).bit_length()
    network = ipaddress.IPv4Network(f"198.18.0.0/{prefixlen}")
    with namespace(prefixlen=prefixlen) as ns:
        hosts = [str(a) for a in list(network.hosts())[1 : args.hosts + 1]]
        present = hosts[::2]
        ns.add_many(present)
        started = time.perf_counter()
        # A relay sweeping more than 4096 addresses at once needs kiosk:sweep_max_hosts raised.
        result = sweep.sweep(hosts, timeout=600, max_hosts=max(len(hosts), sweep.DEFAULT_MAX_HOSTS))
        t_sweep = time.perf_counter() - started
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write("\n".join(hosts))
            listfile = handle.name
        started = time.perf_counter()
        bare = subprocess.run(
            ["nmap", "-sn", "-n", "-oG", "-", "-iL", listfile], capture_output=True, text=True, check=True
        )
        t_bare = time.perf_counter() - started
        os.unlink(listfile)
        bare_up = sum(1 for line in bare.stdout.splitlines() if line.startswith("Host:") and "Status: Up" in line)
        print(f"addresses: {len(hosts)}, present: {len(present)}")
        print(
            f"kiosk.sweep (one nmap via python-nmap): {t_sweep:.2f}s, up {result['up_count']}, down {result['down_count']}"
        )
        print(f"bare nmap -sn -n -iL:                  {t_bare:.2f}s, up {bare_up}")
        line = f"RESULT sweep={t_sweep:.2f}s bare={t_bare:.2f}s ratio={t_sweep / t_bare:.2f}"
        if not args.skip_per_host:
            started = time.perf_counter()
            up = per_host(hosts)
            t_per = time.perf_counter() - started
            print(f"PortScannerAsync per host (32 in flight): {t_per:.2f}s, up {up}")
            line += f" per-host={t_per:.2f}s speedup={t_per / t_sweep:.1f}x"
            ok = t_sweep <= 1.2 * t_bare and t_per >= 10 * t_sweep
        else:
            ok = t_sweep <= 1.2 * t_bare
        print(line + f" goal(<=1.2x bare, >=10x per-host) {'MET' if ok else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
