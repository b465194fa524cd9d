"""
salt-kiosk demo: a small fleet on loopback driven through the real Salt commands.

Starts a master of masters (127.0.0.1), one campus relay (salt-master +
salt-syndic + its own minion on 127.0.0.2) and two kiosk minions, all with
``transport: tcp`` and the embedded SQLite store; then runs a scripted scenario
with ``salt`` and ``salt-run`` and prints a report. Every daemon it started is
stopped at the end, also on failure or Ctrl-C.

The kiosks are this machine, so their power-off command is replaced by
``demo/fake_power.py`` (``kiosk:shutdown_command``), which logs the request.

Run it with ``make demo`` (which builds its own virtualenv), or directly with a
Python that has salt-kiosk installed: ``python demo/run.py [--keep]``.
"""

import argparse
import datetime
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import textwrap
import time
import zoneinfo

import yaml
from capture import PacketCapture
from fleet import LocalFleet, free_port

from salt_kiosk.node import wol

HERE = os.path.dirname(os.path.abspath(__file__))
CAMPUSES = {
    "east": {
        "timezone": "Asia/Shanghai",
        "broadcast": "127.255.255.255",
        "relays": {"relay-e1": "127.0.0.2"},
        "kiosks": ["kiosk-e1", "kiosk-e2"],
    },
}


class Demo:
    def __init__(self, workdir):
        self.wol_port = free_port("127.0.0.1")
        self.fleet = LocalFleet(
            workdir,
            CAMPUSES,
            kiosk_settings={"default_state": "off", "wol_port": self.wol_port, "import_dirs": [HERE]},
            engine={"tick": 5, "grace": 300, "sweep_delays": [5, 10, 15]},
        )
        self.report = []

    def run(self, program, *args, check=True):
        print(f"\n$ {program} {' '.join(args)}")
        return self.fleet.cli(program, *args, check=check)

    @staticmethod
    def step(title):
        print(f"\n=== {title}")

    def scenario(self):
        self.step("1. The fleet answers the master of masters through the syndic")
        pings = self.run("salt", "*", "test.ping")
        print(textwrap.indent(yaml.safe_dump(pings, default_flow_style=False), "  "))
        self.report.append(("minions answering through the syndic", f"{sum(v is True for v in pings.values())}/3"))

        self.step("2. A CSV with a bad row is refused as a whole, naming line and field")
        bad = self.run("salt-run", "kiosk_inventory.import_csv", os.path.join(HERE, "inventory-bad.csv"), check=False)
        message = bad if isinstance(bad, str) else json.dumps(bad)
        for line in message.splitlines():
            line = line.strip()
            if line.startswith("line ") or "bad row(s)" in line:
                print("  " + line.replace("Passed invalid arguments: ", ""))
        listed = self.fleet.cli("salt-run", "kiosk_inventory.list")
        print(f"  kiosks stored after the refused import: {len(listed)}")
        self.report.append(("bad CSV refused, kiosks stored", len(listed)))

        self.step("3. The good inventory is imported into the embedded SQLite store")
        summary = self.run("salt-run", "kiosk_inventory.import_csv", os.path.join(HERE, "inventory.csv"))
        print(f"  added: {summary['added']}  updated: {summary['updated']}  unchanged: {summary['unchanged']}")
        kiosks = self.run("salt-run", "kiosk_inventory.list")
        for kiosk in kiosks:
            print(
                f"  {kiosk['code']:<10} {kiosk['minion_id']:<10} {kiosk['campus']:<6} "
                f"{','.join(kiosk['groups']):<26} {kiosk['ip']:<13} {kiosk['mac']}  vnc {kiosk['vnc_port']}"
            )
        self.report.append(("kiosks in inventory", len(kiosks)))

        self.step("4. Power targets resolve per campus, with the relays that carry Wake-on-LAN")
        targets = self.run("salt-run", "kiosk_power.targets", "group:outpatient")
        for campus, info in targets.items():
            print(
                f"  campus {campus}: kiosks {info['kiosks']} via relays {info['relays']} (broadcast {info['broadcast']})"
            )

        self.step("5. Wake-on-LAN from the campus relay, captured on the wire")
        capture = PacketCapture()
        try:
            started = time.monotonic()
            woke = self.run("salt-run", "kiosk_power.wake", "campus:east", f"port={capture.port}")
            packets = capture.settle(quiet=0.5)
        finally:
            capture.close()
        for minion, entry in sorted(woke["kiosks"].items()):
            got = [(t, src) for t, data, src in packets if wol.is_magic_packet(data, entry["mac"])]
            print(
                f"  {minion}: ok={entry['ok']} acked by {entry['acked']}; captured {len(got)} magic packets "
                f"for {entry['mac']} from {sorted({s for _t, s in got})}"
            )
        last = max((t for t, _d, _s in packets), default=started)
        print(
            f"  power event #{woke['event']}: {woke['ok']} ok, {woke['failed']} failed; last packet {last - started:.2f}s after the call"
        )
        self.report.append(
            ("wake: kiosks ok / magic packets captured", f"{woke['ok']}/{len(woke['kiosks'])} / {len(packets)}")
        )

        self.step("6. Shutdown through each kiosk's own minion (dry run, then for real)")
        dry = self.run("salt-run", "kiosk_power.shutdown", "campus:east", "test=True")
        for minion, entry in sorted(dry["kiosks"].items()):
            print(f"  {minion} would run: {' '.join(entry['command'])}")
        done = self.run("salt-run", "kiosk_power.shutdown", "campus:east", "delay=0", "message=Closing for the night")
        for minion, entry in sorted(done["kiosks"].items()):
            with open(self.fleet.power_log[minion], encoding="utf-8") as handle:
                logged = json.loads(handle.readlines()[-1])
            print(
                f"  {minion}: ok={entry['ok']}; its power command received: {logged['action']} in {logged['delay']}s, {logged['message']!r}"
            )
        self.report.append(("shutdown: kiosks acknowledged", f"{done['ok']}/{len(done['kiosks'])}"))

        self.step("7. Verification of the shutdown: nmap from the relay plus Salt presence")
        print("  (the demo kiosks are this machine and their power command only logs, so they")
        print("   stay up: exactly what a kiosk that ignores a shutdown looks like)")
        verdict = self.run("salt-run", "kiosk_sweep.verify", str(done["event"]))
        for minion, entry in sorted(verdict["kiosks"].items()):
            print(f"  {minion}: {'OK   ' if entry['ok'] else 'WRONG'} {entry['reason']}")
        print(
            f"  power event #{verdict['event']}: {verdict['ok']} ok, {len(verdict['wrong'])} wrong -> "
            f"alert events kiosk/alert/power/<id> fired for {verdict['wrong']}"
        )
        self.report.append(("verification: kiosks still wrong after shutdown", len(verdict["wrong"])))

        self.step("8. Every power event is recorded")
        events = self.run("salt-run", "kiosk_power.events", "limit=5")
        for event in events:
            print(
                f"  #{event['id']} {event['created_at']} {event['user']:<6} {event['action']:<9} {event['target']:<12} ok={event['ok_count']} failed={event['failed_count']}"
            )
        self.report.append(("power events recorded", len(events)))

        self.step("9. Power rules: weekday hours, a holiday override, and the plan")
        tz = zoneinfo.ZoneInfo(CAMPUSES["east"]["timezone"])
        today = datetime.datetime.now(tz).date()
        holiday = today + datetime.timedelta(days=1)
        self.run(
            "salt-run",
            "kiosk_power.rule_add",
            "weekday-hours",
            "state=on",
            "days=mon-fri",
            "start=07:30",
            "end=18:00",
            "target=*",
        )
        self.run(
            "salt-run",
            "kiosk_power.rule_add",
            "holiday",
            "state=off",
            f"dates={holiday.isoformat()}",
            "start=00:00",
            "end=24:00",
            "priority=10",
            "target=campus:east",
        )
        plan = self.run(
            "salt-run",
            "kiosk_power.plan",
            "id:kiosk-e1",
            f"since={today.isoformat()}",
            f"until={(today + datetime.timedelta(days=3)).isoformat()}",
            "timeline=True",
        )
        for step in plan["kiosk-e1"]["timeline"]:
            print(f"  {step['from']} .. {step['until']}  {step['state']:<3}  {step['rule'] or '(default)'}")
        print(f"  ({holiday.isoformat()} is a holiday: the off rule outranks weekday-hours)")
        self.report.append(("plan transitions for kiosk-e1 over 3 days", len(plan["kiosk-e1"]["transitions"])))

        self.step("10. The kiosk_scheduler engine runs a transition a minute from now")
        now = datetime.datetime.now(tz)
        start = (now + datetime.timedelta(minutes=1)).replace(second=0, microsecond=0)
        if (start - now).total_seconds() < 20:
            start += datetime.timedelta(minutes=1)
        end = start + datetime.timedelta(minutes=30)
        # Whatever the time of day, the override flips kiosk-e1's planned state.
        planned = self.fleet.cli("salt-run", "kiosk_power.state_at", "kiosk-e1", f"when={start.isoformat()}")
        flip = "off" if planned["state"] == "on" else "on"
        print(
            f"  kiosk-e1 is planned {planned['state']} at {start:%H:%M} ({planned['rule'] or 'default'}); "
            f"a one-off rule turns it {flip}"
        )
        self.run(
            "salt-run",
            "kiosk_power.rule_add",
            "demo-override",
            f"state={flip}",
            f"dates={start.date().isoformat()}",
            f"start={start:%H:%M}",
            f"end={end:%H:%M}",
            "target=id:kiosk-e1",
            "priority=50",
        )
        capture = PacketCapture(port=self.wol_port)
        try:
            print(f"  waiting for {start:%H:%M} {tz.key} ({(start - now).total_seconds():.0f}s)...")
            event = None
            deadline = time.monotonic() + (start - now).total_seconds() + 60
            while time.monotonic() < deadline and event is None:
                time.sleep(2)
                events = self.fleet.cli("salt-run", "kiosk_power.events", "limit=3")
                event = next((e for e in events if e["rule"] == "demo-override"), None)
            packets = capture.settle(quiet=0.5)
        finally:
            capture.close()
        if event is None:
            raise RuntimeError("the engine did not run the transition in time")
        print(
            f"  engine executed power event #{event['id']} at {event['created_at']}: {event['action']} "
            f"{list(event['kiosks'])} by {event['user']} (rule {event['rule']})"
        )
        if flip == "on":
            print(
                f"  magic packets captured on port {self.wol_port}: {len(packets)} from {sorted({s for _t, _d, s in packets})}"
            )
        else:
            with open(self.fleet.power_log["kiosk-e1"], encoding="utf-8") as handle:
                logged = json.loads(handle.readlines()[-1])
            print(f"  kiosk-e1's power command received: {logged['action']} in {logged['delay']}s")
        status = self.fleet.cli("salt-run", "kiosk_power.engine_status")
        print(
            f"  engine: last tick {status['last_tick']}Z, executed {status['executed']}, missed {status['missed_count']}"
        )
        for nxt in status["next_transitions"][:3]:
            print(f"  next: {nxt['at']} -> {nxt['state']} ({nxt['rule'] or 'default'})")
        self.report.append(("engine transitions executed", status["executed"]))

        self.step("11. Releases: publish 1.0.0, deliver a file, publish 1.1.0, roll back, fleet status")
        self.releases()

        self.step("12. A unit-split job: one kiosk per unit, a hard timeout per unit, results in the store")
        task = self.run(
            "salt-run",
            "kiosk_jobs.run",
            "*",
            "test.echo",
            "arg=[hello from the demo]",
            "unit=1",
            "timeout=20",
            "concurrency=2",
            "wait=True",
        )
        print(f"  task {task['task']}: {task['units']} units, {task['counts']}, success rate {task['success_rate']}")
        for minion, result in sorted(task["results"].items()):
            print(
                f"  {minion:<10} unit {result['unit']}  {result['status']:<8} jid {result['jid']}  -> {result['return']!r}"
            )
        jid = task["results"]["kiosk-e1"]["jid"]
        progress = self.run("salt-run", "kiosk_jobs.progress", jid)
        print(
            f"  job {jid} as the relay's kiosk_mysql returner recorded it: {progress['returned']}/"
            f"{progress['expected']} returned, written by {progress['masters']}"
        )
        self.report.append(("unit-split job: kiosks succeeded", f"{task['counts']['success']}/{task['total']}"))

        self.step("13. Asset inventory refresh, relay environment report, noVNC token files")
        self.assets_env_vnc()

        self.step("14. salt-kiosk modules answer on every node of the tree")
        versions = self.run("salt", "*", "kiosk.version")
        for minion, version in sorted(versions.items()):
            if isinstance(version, dict):
                skew = " (VERSION SKEW)" if version.get("skew") else ""
                print(
                    f"  {minion:<10} salt-kiosk modules {version.get('modules')} library {version.get('library')}{skew}"
                )
            else:
                print(f"  {minion:<10} {version}")
        self.report.append(("nodes running salt-kiosk modules", f"{len(versions)}/3"))

    def make_release(self, name, body):
        path = os.path.join(self.fleet.release_sources(), name)  # kiosk:release_sources of the master
        with tarfile.open(path, "w:gz") as archive:
            info = tarfile.TarInfo("bin/kiosk-ui")
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
        return path

    def releases(self):
        v1 = self.make_release("kiosk-ui-1.0.0.tar.gz", b"kiosk ui 1.0.0\n")
        rel = self.run("salt-run", "kiosk_release.publish", "1.0.0", v1)
        print(
            f"  1.0.0 md5 {rel['md5']}: staged on {rel['staging']['staged']} (md5 checked on the relay), "
            f"installed on {rel['rollout']['installed']} (md5 checked on each kiosk)"
        )
        conf = os.path.join(self.fleet.workdir, "kiosk-e1", "kiosk.conf")
        source = os.path.join(os.path.dirname(HERE), "srv", "salt", "kiosk", "release.sls")
        with open(source, "rb") as handle:
            md5 = hashlib.md5(handle.read()).hexdigest()
        for attempt in ("first", "second"):
            done = self.run("salt", "kiosk-e1", "kiosk.deliver", "salt://kiosk/release.sls", conf, md5)
            print(
                f"  {attempt} delivery to kiosk-e1: changed={done['kiosk-e1']['changed']}, "
                f"{done['kiosk-e1']['bytes']} bytes transferred"
            )
        bad = self.run(
            "salt", "kiosk-e1", "kiosk.deliver", "salt://kiosk/release.sls", conf, "deadbeef" * 4, check=False
        )
        print(f"  wrong md5: {str(bad['kiosk-e1']).splitlines()[-1].strip()}")
        v2 = self.make_release("kiosk-ui-1.1.0.tar.gz", b"kiosk ui 1.1.0\n")
        rel = self.run("salt-run", "kiosk_release.publish", "1.1.0", v2)
        print(f"  1.1.0 installed on {rel['rollout']['installed']}")
        back = self.run("salt-run", "kiosk_release.rollback")
        print(
            f"  rollback: new version {back['version']} carries the content of {back['rollback_of']}, "
            f"installed on {back['rollout']['installed']}"
        )
        status = self.run("salt-run", "kiosk_release.status")
        print(
            textwrap.indent(
                yaml.safe_dump(
                    {k: status[k] for k in ("latest", "versions", "behind", "failures")}, default_flow_style=False
                ),
                "  ",
            )
        )
        current = os.path.join(self.fleet.release_dir("kiosk-e1"), "current")
        print(f"  kiosk-e1: {current} -> {os.readlink(current)}")
        self.report.append(
            (
                "release on every kiosk after the rollback",
                f"{status['latest']} "
                f"({len(status['versions'].get(status['latest'], []))}/{len(CAMPUSES['east']['kiosks'])})",
            )
        )

    def assets_env_vnc(self):
        refresh = self.run("salt-run", "kiosk_inventory.refresh")
        print(
            f"  grains collected from {refresh['answered']}; new assets {refresh['new']}; "
            f"changed {sorted(refresh['changed'])}"
        )
        for minion, changes in sorted(refresh["changed"].items()):
            for field, change in changes.items():
                print(f"    {minion}: {field} {change['old']} -> {change['new']}")
        history = self.run("salt-run", "kiosk_inventory.history", "E-REG-01")
        for row in history:
            print(f"  history E-REG-01 {row['changed_at']}: {row['field']} {row['old']} -> {row['new']}")
        script = [
            {"temperature": t, "humidity": 45, "smoke": s}
            for t, s in ((24, False), (39, False), (39, False), (25, False), (25, True), (24, False))
        ]
        config = json.dumps(
            [
                {"driver": "simulated"},
                {"interval": 1},
                {"temperature": [5, 35]},
                {"humidity": [20, 80]},
                {"script": script},
            ]
        )
        self.run("salt", "relay-e1", "beacons.add", "kiosk_env", config)
        time.sleep(8)
        self.fleet.cli("salt", "relay-e1", "beacons.delete", "kiosk_env")
        time.sleep(2)
        env = self.run("salt-run", "kiosk_env.report", "hours=1")
        for campus, data in env["campuses"].items():
            print(
                f"  {campus}: temperature {data['temperature']}, humidity {data['humidity']}, "
                f"readings with smoke {data['smoke_readings']}"
            )
        for alert in env["alerts"]:
            print(f"  alert {alert['at']} {alert['relay']}: {alert['sensor']} {alert['state']} ({alert['value']})")
        tokens = self.run("salt-run", "kiosk_vnc.tokens")  # into kiosk:vnc_token_dir
        for path in tokens["files"].values():
            with open(path, encoding="utf-8") as handle:
                print(textwrap.indent(handle.read().strip(), f"  {os.path.basename(path)}: "))
        self.report.append(("environment alerts (one per crossing)", len(env["alerts"])))
        self.report.append(("noVNC tokens written", sum(len(t) for t in tokens["tokens"].values())))

    def print_report(self):
        print("\n=== Report")
        width = max(len(k) for k, _ in self.report)
        for key, value in self.report:
            print(f"  {key:<{width}}  {value}")
        store = os.path.join(self.fleet.workdir, "mom", "cache", "master", "kiosk", "kiosk.sqlite3")
        print(f"  {'store':<{width}}  {store}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs, database)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="salt-kiosk-demo-")
    demo = Demo(workdir)
    status = 1
    try:
        print(f"Starting the demo fleet in {workdir} (master of masters, relay-e1 syndic node, 2 kiosks)...")
        started = time.time()
        demo.fleet.start()
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
        demo.fleet.stop()
        if args.keep:
            print(f"Work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
