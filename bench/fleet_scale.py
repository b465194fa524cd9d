"""
Benchmark: how the loopback fleet's everyday operations grow with the number
of kiosk minions (issue 18, part 1).

For each N of ``--sizes`` (default 8, 32, 96) a fresh fleet is started from
plain config files (``demo/fleet.py``): a master of masters, two campuses with
two relays each (four syndic nodes: salt-master + salt-syndic + the relay's
own minion), and N real ``salt-minion`` kiosks, half below each campus's first
relay (``demo/fleet.py``'s layout: the second relays carry no kiosk, only
the wake), all on loopback. The store is the master of masters' embedded SQLite
file (or with ``--mariadb`` a MariaDB database of the bench's own, its schema
made before the fleet starts). Timed,
wall clock, each as an operator runs it:

- fleet start: every daemon started until every minion answers ``test.ping``
  (the kiosks' keys are made before, untimed: real kiosks have theirs);
- ``salt '*' test.ping`` (plain, one job: in Salt 3008 ``--static`` runs a
  100% batch, i.e. a gathering ping and then the job);
- returns stored: from that ping's call until the central store holds a
  ``kiosk_returns`` row for every kiosk for its jid (the relays' masters write
  them through the ``kiosk_mysql`` returner, ``master_job_cache``);
- ``salt-run kiosk_power.wake '*' port=<capture port>``, the magic packets
  captured on loopback: every kiosk MAC must get repeat x relays of its
  campus packets (default 3 x 2 = 6);
- ``salt-run kiosk_power.shutdown '*' test=True``;
- ``salt-run kiosk_inventory.refresh`` (after the wake: it replaces the
  inventory's MACs with what the kiosks report, which on one machine is one
  MAC for all);
- ``salt-run kiosk_jobs.run '*' test.ping unit=30 wait=True`` (the task run
  to its end in the runner);
- ``salt-run kiosk_release.publish`` of a ``--release-mb`` (10) MiB release:
  staged on the four relays, installed on every kiosk.

Each result is checked complete (every kiosk answered / ok / installed,
every row stored); what is missing is printed, the time is marked ``!`` and
the bench exits 1.

Kiosk minions run the lightest realistic settings: ``multiprocessing:
False`` (a job is a thread, not a fork), ``mine_enabled: False``,
``grains_refresh_every: 0``, ``enable_fqdns_grains: False``,
``enable_gpu_grains: False``. They keep ``demo/fleet.py``'s startup state
(``kiosk.release``: a kiosk installs the latest release at power-on, as in
production) and Salt's keepalive parent process (what the packaged service
runs). The memory of each kiosk minion is the sum over its process group
(the keepalive parent and the minion): RSS (which counts the pages the two
share twice) and PSS, idle after the start and again after the operations;
the other daemons' sum is printed too.

An N that does not fit is refused before anything starts (exit 2): 140 MB
per kiosk minion + 2.5 GB for the rest, against MemAvailable (measured
with Salt 3008.4 after the operations: a kiosk minion's two processes hold
about 130 MB RSS, 90 MB PSS; the master of masters and the four relay
nodes, 83 processes, 5.5 GB RSS, 2.4 GB PSS).

Goal: each operation grows at most linearly, k <= 1.1 for every pair of
successive sizes and overall, where k = log(t2 / t1) / log(N2 / N1).
Operations over the goal are marked; the RESULT line says MET or MISSED
(the figures of small sizes say little: fixed costs hide the growth).

Run: python bench/fleet_scale.py [--sizes 8,32,96] [--repeat 3] [--release-mb 10] [--mariadb]
"""

import argparse
import collections
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import sqlalchemy as sa
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "demo"))
sys.path.insert(0, HERE)

import preflight  # noqa: E402
import rollout as rollout_bench  # noqa: E402  (bench/rollout.py: the kiosks' own fetch records)
import scratch_db  # noqa: E402
from capture import PacketCapture  # noqa: E402
from fleet import BIN, LocalFleet  # noqa: E402

from salt_kiosk.db import schema, store  # noqa: E402

RELAYS = {
    "east": {"relay-e1": "127.0.0.2", "relay-e2": "127.0.0.4"},
    "west": {"relay-w1": "127.0.0.3", "relay-w2": "127.0.0.5"},
}
TIMEZONES = {"east": "Asia/Shanghai", "west": "Europe/Berlin"}

#: The operations timed for each N, in the order they run: (key, row label).
OPERATIONS = [
    ("start", "fleet start"),
    ("ping", "salt '*' test.ping"),
    ("stored", "returns stored"),
    ("wake", "kiosk_power.wake"),
    ("shutdown", "kiosk_power.shutdown test"),
    ("refresh", "kiosk_inventory.refresh"),
    ("jobs", "kiosk_jobs.run test.ping"),
    ("publish", "kiosk_release.publish"),
]

#: Growth exponent goal.
GOAL_K = 1.1

#: Memory estimate used to refuse an N up front (MB).
PER_MINION_MB = 140
REST_MB = 2560

#: What the kiosk minions run with on top of demo/fleet.py's settings.
LIGHT_MINION = {
    "multiprocessing": False,
    "mine_enabled": False,
    "grains_refresh_every": 0,
    "enable_fqdns_grains": False,
    "enable_gpu_grains": False,
}


class LightFleet(LocalFleet):
    """``LocalFleet`` whose kiosk minions get :data:`LIGHT_MINION` in their config files."""

    def configure(self):
        super().configure()
        for kiosk in self.kiosks:
            path = os.path.join(self.conf(kiosk), "minion")
            with open(path, encoding="utf-8") as handle:
                config = yaml.safe_load(handle)
            config.update(LIGHT_MINION)
            with open(path, "w", encoding="utf-8") as handle:
                yaml.safe_dump(config, handle, default_flow_style=False)


def campuses(count):
    """Two campuses of two relays; ``count`` kiosks, alternately east and west."""
    layout = {
        name: {"timezone": TIMEZONES[name], "broadcast": "127.255.255.255", "relays": dict(relays), "kiosks": []}
        for name, relays in RELAYS.items()
    }
    for index in range(count):
        campus = "east" if index % 2 == 0 else "west"
        layout[campus]["kiosks"].append(f"kiosk-{campus[0]}{index:03d}")
    return layout


def write_inventory(path, fleet):
    """The inventory CSV of the fleet's kiosks; returns ``{kiosk: (campus, mac)}``."""
    kiosks = {}
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("code,minion_id,campus,groups,ip,mac,vnc_port\n")
        for campus, spec in fleet.campuses.items():
            for kiosk in spec["kiosks"]:
                index = int(kiosk[-3:])
                mac = f"02:4b:00:00:{index >> 8 & 255:02x}:{index & 255:02x}"
                kiosks[kiosk] = (campus, mac)
                handle.write(f"K{index:04d},{kiosk},{campus},bench,10.99.{index // 250}.{index % 250 + 1},{mac},5900\n")
    return kiosks


def available_mb():
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable")


def estimate_mb(count):
    return PER_MINION_MB * count + REST_MB


def process_groups():
    """``{process group id: [pid, ...]}`` of every process."""
    groups = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        groups[int(fields[2])].append(int(entry))
    return groups


def memory_kb(pid):
    """``(RSS, PSS)`` of one process in kB (PSS None where the kernel has no smaps_rollup)."""
    rss = pss = None
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss or 0, pss


def fleet_memory(fleet):
    """
    The kiosk minions' and the other daemons' memory: ``{"kiosk": (RSS, PSS,
    processes), "rest": (RSS, PSS, processes)}``, sums in MB over the process
    group of each daemon (each runs in a session of its own).
    """
    groups = process_groups()
    kiosks = {f"salt-minion ({k})" for k in fleet.kiosks}
    totals = {"kiosk": [0, 0, 0], "rest": [0, 0, 0]}
    for label, proc in fleet.procs:
        side = totals["kiosk" if label in kiosks else "rest"]
        for pid in groups.get(proc.pid, []):
            rss, pss = memory_kb(pid)
            side[0] += rss
            side[1] += pss or 0
            side[2] += 1
    return {side: (rss / 1024, pss / 1024, procs) for side, (rss, pss, procs) in totals.items()}


def json_documents(out):
    """Every JSON document of ``out``, in order (a plain ``salt`` call prints one per minion)."""
    decoder, index, docs = json.JSONDecoder(), 0, []
    while index < len(out):
        if out[index].isspace():
            index += 1
            continue
        doc, index = decoder.raw_decode(out, index)
        docs.append(doc)
    return docs


def salt_ping(fleet, timeout):
    """``salt '*' test.ping`` (no ``--static``); returns ``(jid, {minion: answer})``."""
    cmd = [os.path.join(BIN, "salt"), "-c", fleet.conf("mom"), "--out=json", "--show-jid", "-t", str(timeout)]
    proc = subprocess.run([*cmd, "*", "test.ping"], capture_output=True, text=True, timeout=timeout + 120)
    jid, body = None, []
    for line in proc.stdout.splitlines():
        if line.startswith("jid: "):
            jid = line.split(":", 1)[1].strip()
        else:
            body.append(line)
    answers = {}
    for doc in json_documents("\n".join(body)):
        if isinstance(doc, dict):
            answers.update(doc)
    return jid, answers


def stored_returns(engine, jid):
    """``{minion id: master id}`` of the ``kiosk_returns`` rows of ``jid``."""
    table = schema.returns
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.minion_id, table.c.master_id).where(table.c.jid == jid)).all()
    return {row.minion_id: row.master_id for row in rows}


def ping_jids(engine):
    table = schema.returns
    with engine.connect() as conn:
        return {row.jid for row in conn.execute(sa.select(table.c.jid).where(table.c.fun == "test.ping").distinct())}


def short(items, limit=8):
    items = sorted(items)
    return ", ".join(items[:limit]) + (f" ... ({len(items)} in all)" if len(items) > limit else "")


class SizeRun:
    """One N: its fleet, the operations' times and what was incomplete."""

    def __init__(self, count, args):
        self.count = count
        self.args = args
        self.times = {}
        self.problems = collections.defaultdict(list)
        self.memory = {}
        self.workdir = tempfile.mkdtemp(prefix=f"kiosk-bench-fleet-scale-{count}-")
        self.database = None
        self.fleet = LightFleet(self.workdir, campuses(count))
        self.kiosks = set(self.fleet.kiosks)
        self.inventory = {}
        self.engine = None
        self.jids_before = set()
        self.ping_jid = None
        self.ping_started = None

    def note(self, op, message):
        self.problems[op].append(message)
        print(f"  INCOMPLETE {op}: {message}", flush=True)

    def timed(self, op, func):
        """Run one operation; its time is its wall time, or the seconds it returns."""
        started = time.perf_counter()
        try:
            seconds = func()
        except Exception as exc:  # pylint: disable=broad-except
            self.note(op, f"{type(exc).__name__}: ...{str(exc)[-1500:]}")
            return
        self.times[op] = time.perf_counter() - started if seconds is None else seconds
        mark = " !" if self.problems.get(op) else ""
        print(f"  {dict(OPERATIONS)[op]:<28} {self.times[op]:8.2f} s{mark}", flush=True)

    def missing(self, op, what, expected, got):
        lacking = set(expected) - set(got)
        if lacking:
            self.note(op, f"{len(lacking)}/{len(expected)} kiosks {what}: {short(lacking)}")

    # -- the operations

    def op_start(self):
        try:
            self.fleet.start(timeout=120 + 3 * self.count)
        except Exception:
            self.log_tails()
            raise

    def log_tails(self, lines=12):
        """What the master of masters and the first relay logged last (the work directory goes at the end)."""
        for name in ("mom", "relay-e1"):
            folder = os.path.join(self.workdir, name, "log")
            for log_name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
                with open(os.path.join(folder, log_name), encoding="utf-8", errors="replace") as handle:
                    tail = handle.readlines()[-lines:]
                print(f"  -- {name}/log/{log_name}, last {len(tail)} lines:", flush=True)
                for line in tail:
                    print("     " + line.rstrip()[:300], flush=True)

    def op_ping(self):
        self.ping_started = time.perf_counter()
        self.ping_jid, answers = salt_ping(self.fleet, timeout=60)
        self.missing("ping", "did not answer True", self.kiosks, [m for m, v in answers.items() if v is True])

    def op_stored(self):
        # Timed from the ping's call: the returns are written as they come.
        started = self.ping_started
        jid = self.ping_jid
        if jid is None:
            new = sorted(ping_jids(self.engine) - self.jids_before)
            jid = new[-1] if new else None
        if jid is None:
            raise RuntimeError("the ping's jid is unknown (no --show-jid line, no new test.ping row)")
        deadline = time.perf_counter() + 60
        rows = {}
        while time.perf_counter() < deadline:
            rows = stored_returns(self.engine, jid)
            if self.kiosks <= set(rows):
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        self.missing("stored", f"without a kiosk_returns row for jid {jid}", self.kiosks, rows)
        masters = collections.Counter(rows.values())
        print(f"  (jid {jid}: {len(rows)} rows, by master {dict(sorted(masters.items()))})", flush=True)
        return seconds

    def op_wake(self):
        capture = PacketCapture()
        try:
            started = time.monotonic()
            result = self.fleet.cli(
                "salt-run",
                "kiosk_power.wake",
                "*",
                f"port={capture.port}",
                f"repeat={self.args.repeat}",
                "timeout=60",
                timeout=600,
            )
            returned = time.monotonic() - started
            packets = capture.settle(quiet=1.0)
        finally:
            capture.close()
        per_mac = collections.Counter(data[6:12].hex(":") for _t, data, _s in packets if len(data) == 102)
        last = max(t for t, _d, _s in packets) - started if packets else float("nan")
        kiosks = (result or {}).get("kiosks", {}) if isinstance(result, dict) else {}
        self.missing("wake", "not ok", self.kiosks, [k for k, v in kiosks.items() if v.get("ok")])
        wrong = {}
        for kiosk, (campus, mac) in self.inventory.items():
            expected = self.args.repeat * len(self.fleet.campuses[campus]["relays"])
            if per_mac.get(mac, 0) != expected:
                wrong[kiosk] = f"{per_mac.get(mac, 0)}/{expected}"
        if wrong:
            got = short(f"{kiosk} {counts}" for kiosk, counts in wrong.items())
            self.note("wake", f"{len(wrong)} kiosks without exactly repeat x relays packets (got/expected): {got}")
        print(
            f"  ({sum(per_mac.values())} magic packets, runner returned after {returned:.2f} s, "
            f"last packet {last:.2f} s after the call)",
            flush=True,
        )

    def op_shutdown(self):
        result = self.fleet.cli("salt-run", "kiosk_power.shutdown", "*", "test=True", "timeout=60", timeout=600)
        kiosks = result.get("kiosks", {}) if isinstance(result, dict) else {}
        self.missing("shutdown", "not ok", self.kiosks, [k for k, v in kiosks.items() if v.get("ok")])

    def op_refresh(self):
        result = self.fleet.cli("salt-run", "kiosk_inventory.refresh", "timeout=60", timeout=600)
        answered = result.get("answered", []) if isinstance(result, dict) else []
        self.missing("refresh", "did not answer", self.kiosks, answered)

    def op_jobs(self):
        result = self.fleet.cli(
            "salt-run", "kiosk_jobs.run", "*", "test.ping", "unit=30", "timeout=120", "wait=True", timeout=900
        )
        results = result.get("results", {}) if isinstance(result, dict) else {}
        self.missing("jobs", "not success", self.kiosks, [k for k, v in results.items() if v["status"] == "success"])
        if isinstance(result, dict):
            print(f"  ({result.get('units')} units, counts {result.get('counts')})", flush=True)

    def op_publish(self):
        path = os.path.join(self.fleet.release_sources(), "ui-1.bin")
        with open(path, "wb") as handle:
            for _ in range(self.args.release_mb):
                handle.write(os.urandom(1024 * 1024))
        called = time.time()
        result = self.fleet.cli("salt-run", "kiosk_release.publish", "1.0.0", path, "timeout=900", timeout=1800)
        ended = time.time()
        if not isinstance(result, dict):
            raise RuntimeError(f"publish answered {result!r}"[:1500])
        self.publish_phases(called, ended)
        staged = result.get("staging", {}).get("staged", [])
        lacking = set(self.fleet.relays) - set(staged)
        if lacking:
            self.note("publish", f"not staged on {short(lacking)}: {result.get('staging')}")
        rollout = result.get("rollout") or {}
        self.missing("publish", "did not install", self.kiosks, rollout.get("installed", []))

    def publish_phases(self, called, ended):
        """Where the publish's time went, from each kiosk's own record of its fetch (untimed)."""
        windows = []
        for kiosk in self.kiosks:
            try:  # a kiosk that did not fetch has no record: left out
                windows.extend(rollout_bench.fetch_intervals(self.fleet, [kiosk]).values())
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if not windows:
            return
        fetches = sorted(end - start for start, end in windows)
        first, last = min(s for s, _ in windows), max(e for _, e in windows)
        print(
            f"  (publish: {first - called:.1f} s until the first kiosk fetch (staging on the relays), fetches "
            f"{first - called:.1f}-{last - called:.1f} s, each {fetches[0]:.1f}-{fetches[-1]:.1f} s "
            f"(median {fetches[len(fetches) // 2]:.1f}), then {ended - last:.1f} s until the runner's answer)",
            flush=True,
        )

    def run(self):
        print(f"\nN={self.count}: {self.count} kiosk minions, 4 relays, in {self.workdir}", flush=True)
        try:
            self._run()
        except Exception as exc:  # pylint: disable=broad-except
            # Setting the fleet up failed (database, inventory): counted against its start.
            self.times.pop("start", None)
            self.note("start", f"setting up: {type(exc).__name__}: ...{str(exc)[-1500:]}")
        finally:
            if self.engine is not None:
                self.engine.dispose()
            self.fleet.stop(report=lambda _line: None)
            shutil.rmtree(self.workdir, ignore_errors=True)
            scratch_db.drop(self.database)

    def _run(self):
        count = self.count
        if self.args.mariadb:
            self.database, url = scratch_db.create("kiosk_fleet_scale_bench")
            # Migrated before the relays start, as a deployment does: a relay
            # never migrates, and spools its returns while the schema is behind.
            store.upgrade_schema({"kiosk": {"db": url}})
            self.fleet.kiosk_settings["db"] = url
        started = time.perf_counter()
        self.fleet._pregenerate_minion_keys()  # pylint: disable=protected-access
        print(f"  (keys of {count + 4} minions made in {time.perf_counter() - started:.1f} s, untimed)", flush=True)
        self.timed("start", self.op_start)
        if "start" not in self.times:
            return
        self.memory["idle"] = fleet_memory(self.fleet)
        csv = os.path.join(self.workdir, "inventory.csv")
        self.inventory = write_inventory(csv, self.fleet)
        summary = self.fleet.cli("salt-run", "kiosk_inventory.import_csv", csv)
        codes = sorted(f"K{int(kiosk[-3:]):04d}" for kiosk in self.kiosks)
        if not isinstance(summary, dict) or sorted(summary.get("added", [])) != codes:
            raise RuntimeError(f"the inventory import answered {summary!r}")
        self.engine = sa.create_engine(self.fleet.central_db_url())
        self.jids_before = ping_jids(self.engine)
        self.timed("ping", self.op_ping)
        if "ping" in self.times:
            self.timed("stored", self.op_stored)
        self.timed("wake", self.op_wake)
        self.timed("shutdown", self.op_shutdown)
        self.timed("refresh", self.op_refresh)
        self.timed("jobs", self.op_jobs)
        self.timed("publish", self.op_publish)
        self.memory["after"] = fleet_memory(self.fleet)
        for when, label in (("idle", "after the start"), ("after", "after the operations")):
            rss, pss, procs = self.memory[when]["kiosk"]
            rest = self.memory[when]["rest"]
            print(
                f"  memory {label}: per kiosk minion RSS {rss / count:.1f} MB, PSS {pss / count:.1f} MB "
                f"({procs / count:g} processes each); the other daemons RSS {rest[0]:.0f} MB, "
                f"PSS {rest[1]:.0f} MB ({rest[2]} processes)",
                flush=True,
            )


def exponent(n1, t1, n2, t2):
    if not t1 or not t2 or t1 <= 0 or t2 <= 0 or n1 == n2:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def report(runs):
    """Print the table; return ``{operation: its largest k}``."""
    sizes = [r.count for r in runs]
    pairs = list(zip(runs, runs[1:]))
    head = f"{'operation':<28}" + "".join(f"{f'N={n} s':>10}" for n in sizes)
    head += "".join(f"{f'k {a.count}->{b.count}':>12}" for a, b in pairs)
    if len(runs) > 2:
        head += f"{'k overall':>12}"
    head += "  goal k<=1.1"
    print("\n" + head)
    largest = {}
    for op, label in OPERATIONS:
        line = f"{label:<28}"
        for run in runs:
            value = run.times.get(op)
            cell = "failed" if value is None else f"{value:.2f}" + ("!" if run.problems.get(op) else "")
            line += f"{cell:>10}"
        ks = [exponent(a.count, a.times.get(op), b.count, b.times.get(op)) for a, b in pairs]
        if len(runs) > 2:
            ks.append(exponent(runs[0].count, runs[0].times.get(op), runs[-1].count, runs[-1].times.get(op)))
        for k in ks:
            cell = "-" if k is None else f"{k:.2f}" + ("*" if k > GOAL_K else "")
            line += f"{cell:>12}"
        known = [k for k in ks if k is not None]
        if known:
            largest[op] = max(known)
        verdict = "n/a" if not known else "OVER" if max(known) > GOAL_K else "ok"
        print(f"{line}  {verdict}")
    print("seconds: wall time of each operation; '!' an incomplete result (see above), 'failed' it raised.")
    print("k = log(t2/t1) / log(N2/N1) between successive N (and first to last); '*' over the goal 1.1.")
    return largest


def parse_sizes(text):
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes {text!r}: a comma-separated list of kiosk counts") from None
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError(f"--sizes {text!r}: distinct kiosk counts >= 1")
    return sorted(sizes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[8, 32, 96], help="kiosk counts (default 8,32,96)")
    parser.add_argument("--repeat", type=int, default=3, help="magic packets per kiosk per relay (default 3)")
    parser.add_argument("--release-mb", type=int, default=10, help="size of the published release (default 10)")
    parser.add_argument(
        "--mariadb", action="store_true", help="use a MariaDB store instead of the embedded SQLite file"
    )
    args = parser.parse_args()
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be 1-20 (kiosk_power.wake's range)")
    if args.release_mb < 1:
        parser.error("--release-mb must be >= 1")

    available = available_mb()
    for count in args.sizes:
        if estimate_mb(count) > available:
            print(
                f"refusing N={count}: the fleet needs an estimated {estimate_mb(count)} MB "
                f"({PER_MINION_MB} MB x {count} kiosk minions + {REST_MB} MB for the master of masters and the "
                f"4 relay nodes), and only {available} MB are available (MemAvailable)",
                file=sys.stderr,
            )
            return 2
    if args.mariadb and preflight.refuse(preflight.mariadb):
        return 2

    print(
        f"sizes {', '.join(map(str, args.sizes))} kiosk minions; repeat {args.repeat}; release {args.release_mb} MiB; "
        f"store {'MariaDB' if args.mariadb else 'SQLite (embedded)'}; {os.cpu_count()} CPUs, {available} MB available",
        flush=True,
    )
    runs = []
    for count in args.sizes:
        run = SizeRun(count, args)
        run.run()
        runs.append(run)
    largest = report(runs)
    over = [op for op, k in largest.items() if k > GOAL_K]
    worst = max(largest, key=largest.get) if largest else None
    incomplete = sorted({f"{op}@{run.count}" for run in runs for op in run.problems})
    for run in runs:
        for op, messages in run.problems.items():
            for message in messages:
                print(f"INCOMPLETE N={run.count} {dict(OPERATIONS)[op]}: {message}")
    rss = [
        f"{run.count}:{run.memory['after']['kiosk'][0] / run.count:.0f}/{run.memory['after']['kiosk'][1] / run.count:.0f}"
        for run in runs
        if "after" in run.memory
    ]
    verdict = "n/a" if worst is None else "MISSED" if over else "MET"
    print(
        f"RESULT sizes={','.join(map(str, args.sizes))} relays=4 repeat={args.repeat} release-mb={args.release_mb} "
        f"rss/pss-MB-per-kiosk={','.join(rss) or 'none'} "
        f"k-max={f'{largest[worst]:.2f}({worst})' if worst else 'n/a'} goal k<={GOAL_K} {verdict} "
        f"over={','.join(over) or 'none'} incomplete={','.join(incomplete) or 'none'}"
    )
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
