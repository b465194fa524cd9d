"""
salt-kiosk demo: a small fleet on loopback driven through the real Salt commands.

Starts a master of masters (127.0.0.1), one campus relay (salt-master +
salt-syndic + its own minion on 127.0.0.2) and two kiosk minions, all with
``transport: tcp`` and the embedded SQLite store; then runs a scripted scenario
with ``salt`` and ``salt-run`` and prints a report. Every daemon it started is
stopped at the end, also on failure or Ctrl-C.

Run it with ``make demo`` (which builds its own virtualenv), or directly with a
Python that has salt-kiosk installed: ``python demo/run.py [--keep]``.
"""

import argparse
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import yaml

from salt_kiosk import topology

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(os.path.abspath(sys.executable))
MOM_ADDR = "127.0.0.1"
RELAY_ADDR = "127.0.0.2"
KIOSKS = ("kiosk-e1", "kiosk-e2")


def free_port(address):
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def write_config(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle, default_flow_style=False)


class Demo:
    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []
        self.user = getpass.getuser()
        self.mom_pub = free_port(MOM_ADDR)
        self.mom_ret = free_port(MOM_ADDR)
        self.relay_ret = free_port(RELAY_ADDR)
        self.report = []

    def conf(self, name):
        return os.path.join(self.workdir, name, "conf")

    def base(self, name, role):
        root = os.path.join(self.workdir, name)
        return {
            "root_dir": root,
            "user": self.user,
            "id": name,
            "log_file": os.path.join(root, "log", f"{role}.log"),
            "log_level_logfile": "info",
            "pki_dir": os.path.join(root, "pki", role),
            "cachedir": os.path.join(root, "cache", role),
            "sock_dir": os.path.join(root, "sock", role),
            "pidfile": os.path.join(root, "run", f"{role}.pid"),
        }

    def configure(self):
        mom = self.base("mom", "master")
        mom.update(topology.mom(MOM_ADDR, self.mom_pub, self.mom_ret, auto_accept=True))
        mom["kiosk"] = {
            # No "db": the embedded SQLite store in the master's cachedir.
            "default_state": "off",
            "campuses": {
                "east": {"timezone": "Asia/Shanghai", "broadcast": "127.255.255.255", "relays": ["relay-e1"]},
            },
        }
        write_config(os.path.join(self.conf("mom"), "master"), mom)

        relay_master = self.base("relay-e1", "master")
        relay_master.update(topology.syndic_master(RELAY_ADDR, self.relay_ret, self.mom_pub, auto_accept=True))
        relay_master.update(topology.syndic(MOM_ADDR, self.mom_ret))
        relay_master["syndic_log_file"] = os.path.join(self.workdir, "relay-e1", "log", "syndic.log")
        relay_master["syndic_pidfile"] = os.path.join(self.workdir, "relay-e1", "run", "syndic.pid")
        write_config(os.path.join(self.conf("relay-e1"), "master"), relay_master)
        relay_minion = self.base("relay-e1", "minion")
        relay_minion.update(topology.minion(RELAY_ADDR, self.relay_ret, self.mom_pub))
        write_config(os.path.join(self.conf("relay-e1"), "minion"), relay_minion)

        for kiosk in KIOSKS:
            config = self.base(kiosk, "minion")
            config.update(topology.minion(RELAY_ADDR, self.relay_ret))
            write_config(os.path.join(self.conf(kiosk), "minion"), config)

    def start(self, name, program):
        log = open(os.path.join(self.workdir, name, f"{program}.out"), "wb")
        proc = subprocess.Popen(
            [os.path.join(BIN, program), "-c", self.conf(name), "-l", "quiet"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((f"{program} ({name})", proc))

    def start_fleet(self):
        self.start("mom", "salt-master")
        time.sleep(2)
        self.start("relay-e1", "salt-master")
        time.sleep(2)
        self.start("relay-e1", "salt-syndic")
        self.start("relay-e1", "salt-minion")
        for kiosk in KIOSKS:
            self.start(kiosk, "salt-minion")

    def stop_fleet(self):
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 30
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            print(f"  stopped {name}")
        self.procs = []

    def cli(self, program, *args, check=True, show=True):
        static = ["--static"] if program == "salt" else []
        cmd = [os.path.join(BIN, program), "-c", self.conf("mom"), "--out=json", *static, *args]
        if show:
            print(f"\n$ {program} {' '.join(args)}")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        out = proc.stdout.strip()
        try:
            data = json.loads(out) if out else None
        except json.JSONDecodeError:
            data = out
        if check and proc.returncode != 0 and not isinstance(data, (dict, list)):
            raise RuntimeError(f"{program} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return data

    def wait_for_fleet(self, timeout=180):
        want = {"relay-e1", *KIOSKS}
        deadline = time.time() + timeout
        answered = {}
        while time.time() < deadline:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early with {proc.returncode}; see {self.workdir}")
            answered = self.cli("salt", "*", "test.ping", "-t", "5", check=False, show=False) or {}
            if isinstance(answered, dict) and want <= {k for k, v in answered.items() if v is True}:
                return answered
            time.sleep(2)
        raise RuntimeError(f"fleet did not come up in {timeout}s (answered: {answered}); logs in {self.workdir}")

    def step(self, title):
        print(f"\n=== {title}")

    def scenario(self):
        self.step("1. The fleet answers the master of masters through the syndic")
        pings = self.cli("salt", "*", "test.ping")
        print(textwrap.indent(yaml.safe_dump(pings, default_flow_style=False), "  "))
        self.report.append(("minions answering through the syndic", f"{sum(v is True for v in pings.values())}/3"))

        self.step("2. A CSV with a bad row is refused as a whole, naming line and field")
        bad = self.cli("salt-run", "kiosk_inventory.import_csv", os.path.join(HERE, "inventory-bad.csv"), check=False)
        message = bad if isinstance(bad, str) else json.dumps(bad)
        for line in message.splitlines():
            line = line.strip()
            if line.startswith("line ") or "bad row(s)" in line:
                print("  " + line.replace("Passed invalid arguments: ", ""))
        listed = self.cli("salt-run", "kiosk_inventory.list", show=False)
        print(f"  kiosks stored after the refused import: {len(listed)}")
        self.report.append(("bad CSV refused, kiosks stored", len(listed)))

        self.step("3. The good inventory is imported into the embedded SQLite store")
        summary = self.cli("salt-run", "kiosk_inventory.import_csv", os.path.join(HERE, "inventory.csv"))
        print(f"  added: {summary['added']}  updated: {summary['updated']}  unchanged: {summary['unchanged']}")
        kiosks = self.cli("salt-run", "kiosk_inventory.list")
        for kiosk in kiosks:
            print(
                f"  {kiosk['code']:<10} {kiosk['minion_id']:<10} {kiosk['campus']:<6} "
                f"{','.join(kiosk['groups']):<26} {kiosk['ip']:<13} {kiosk['mac']}  vnc {kiosk['vnc_port']}"
            )
        self.report.append(("kiosks in inventory", len(kiosks)))

        self.step("4. Power targets resolve per campus, with the relays that carry Wake-on-LAN")
        targets = self.cli("salt-run", "kiosk_power.targets", "group:outpatient")
        for campus, info in targets.items():
            print(f"  campus {campus}: kiosks {info['kiosks']} via relays {info['relays']} (broadcast {info['broadcast']})")

        self.step("5. salt-kiosk modules answer on every node of the tree")
        versions = self.cli("salt", "*", "kiosk.version")
        for minion, version in sorted(versions.items()):
            print(f"  {minion:<10} salt-kiosk {version}")
        self.report.append(("nodes running salt-kiosk modules", f"{len(versions)}/3"))

    def print_report(self):
        print("\n=== Report")
        width = max(len(k) for k, _ in self.report)
        for key, value in self.report:
            print(f"  {key:<{width}}  {value}")
        print(f"  {'store':<{width}}  {os.path.join(self.workdir, 'mom', 'cache', 'master', 'kiosk', 'kiosk.sqlite3')}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs, database)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="salt-kiosk-demo-")
    demo = Demo(workdir)
    status = 1
    try:
        demo.configure()
        print(f"Starting the demo fleet in {workdir} (master of masters, relay-e1 syndic node, 2 kiosks)...")
        started = time.time()
        demo.start_fleet()
        demo.wait_for_fleet()
        print(f"Fleet up in {time.time() - started:.0f}s.")
        demo.scenario()
        demo.print_report()
        status = 0
    except KeyboardInterrupt:
        print("\ninterrupted")
    except Exception as exc:  # pylint: disable=broad-except
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        args.keep = True
    finally:
        print("\nStopping the demo fleet...")
        demo.stop_fleet()
        if args.keep:
            print(f"Work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
