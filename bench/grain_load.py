"""
Benchmark: what the ``kiosk`` grain costs a kiosk or relay at every grain
refresh, in a fresh interpreter: the time to load the grain module with the
library it imports and to collect the grain, the modules that brings in, and
whether SQLAlchemy or ``salt.client`` came with it.

Each run is a new Python process that has already imported ``salt.config``
(a minion has Salt loaded before it loads grains), so the figure is the
grain's own cost. Prints the minimum and median of ``--runs`` runs.

Run: python bench/grain_load.py [--checkout DIR] [--runs N]
     (DIR: another checkout of salt-kiosk to measure side by side, e.g. a
     ``git worktree`` of an older commit; default: this one)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

PROBE = r"""
import importlib.util, json, sys, time
import salt.config, salt.utils.network
opts = salt.config.minion_config(None)
opts.update(id="kiosk-bench", cachedir=sys.argv[2], kiosk={"code": "B01", "campus": "east"})
before = set(sys.modules)
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("salt.loaded.ext.grains.kiosk", sys.argv[1] + "/_grains/kiosk.py")
module = importlib.util.module_from_spec(spec)
module.__opts__ = opts
spec.loader.exec_module(module)
loaded = time.perf_counter()
grain = module.kiosk()["kiosk"]
done = time.perf_counter()
new = set(sys.modules) - before
print(json.dumps({"load": loaded - started, "collect": done - loaded, "modules": len(new),
                  "library": sorted(m for m in new if m.startswith("salt_kiosk")),
                  "sqlalchemy": "sqlalchemy" in sys.modules, "salt.client": "salt.client" in sys.modules,
                  "fields": len(grain)}))
"""


def measure(checkout, runs):
    results = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(runs):
            env = dict(os.environ, PYTHONPATH=checkout)
            out = subprocess.run(
                [sys.executable, "-c", PROBE, checkout, cache],
                env=env,
                check=True,
                capture_output=True,
                text=True,
                cwd=cache,
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def report(label, results):
    load = [r["load"] * 1000 for r in results]
    total = [(r["load"] + r["collect"]) * 1000 for r in results]
    last = results[-1]
    print(
        f"{label:<10} load {min(load):7.1f} ms min {statistics.median(load):7.1f} ms median | "
        f"load+collect {min(total):7.1f} ms min | {last['modules']:4d} modules, "
        f"{len(last['library']):2d} of salt_kiosk | sqlalchemy {last['sqlalchemy']!s:5} "
        f"salt.client {last['salt.client']!s:5} | {last['fields']} fields"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", help="another checkout to measure side by side")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if args.checkout:
        report("other", measure(os.path.abspath(args.checkout), args.runs))
    report("this", measure(here, args.runs))


if __name__ == "__main__":
    main()
