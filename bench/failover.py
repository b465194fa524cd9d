"""
Benchmark: failover and takeover on the real fault fleet (tests/faults): two
masters of masters running the engine over one private MariaDB, a campus of
two relays (one salt-syndic per master of masters on each), two kiosks listing
both relays as masters.

Each run is one pass of the fault tests, which stop the daemons for real and
write what they measure into a figures file ($KIOSK_FAILOVER_FIGURES):

* failover: from relay-e1's salt-master, salt-syndics and salt-minion stopping
  to every kiosk of the campus answering ``test.ping`` from the master of
  masters through relay-e2;
* takeover: from the leading master of masters stopping to the standby holding
  the engine's lease (then it executes what falls due);
* standby late: how long after it fell due the standby sent the transition;
* returns lost and returns doubled in the returner's tables (must be 0);
* double power actions: transitions sent more than once (must be 0).

Prints min / median / max over ``--runs`` runs (default 3) and exits non-zero
when a run failed or a must-be-zero figure is not 0.

Run: python bench/failover.py [--runs N]
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIGURES = [
    ("relay_failover_s", "failover: relay dies -> all its kiosks answer (s)"),
    ("takeover_s", "takeover: leader dies -> standby holds the lease (s)"),
    ("standby_executed_after_due_s", "standby sends a due transition after (s)"),
    ("returns_lost", "returns lost"),
    ("returns_doubled", "returns doubled"),
    ("double_power_actions", "double power actions"),
]
MUST_BE_ZERO = {"returns_lost", "returns_doubled", "double_power_actions"}


def one_run(index):
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as handle:
        path = handle.name
    env = dict(os.environ, KIOSK_FAILOVER_FIGURES=path)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - started
    with open(path, encoding="utf-8") as handle:
        figures = [json.loads(line) for line in handle if line.strip()]
    os.unlink(path)
    tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"run {index}: pytest exit {proc.returncode} in {took:.0f} s: {tail[0]}", flush=True)
    if proc.returncode:
        with tempfile.NamedTemporaryFile("w", prefix=f"failover-run{index}-", suffix=".log", delete=False) as out:
            out.write(proc.stdout + proc.stderr)
        print(f"run {index}: its pytest output is in {out.name}", flush=True)
    return proc.returncode, figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: give at least 1")
    values = collections.defaultdict(list)
    failed = 0
    for index in range(1, args.runs + 1):
        code, figures = one_run(index)
        failed += code != 0
        for figure in figures:
            values[figure["name"]].append(figure["value"])
    print()
    print(f"{'figure':<55} {'min':>8} {'median':>8} {'max':>8}  runs")
    bad = []
    for name, label in FIGURES:
        got = values.get(name, [])
        if not got:
            print(f"{label:<55} {'-':>8} {'-':>8} {'-':>8}  0")
            continue
        print(f"{label:<55} {min(got):8.1f} {statistics.median(got):8.1f} {max(got):8.1f}  {len(got)}")
        if name in MUST_BE_ZERO and any(v != 0 for v in got):
            bad.append(name)
    if failed or bad:
        print(f"\nFAILED: {failed} run(s) failed; not zero: {', '.join(bad) or 'none'}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
