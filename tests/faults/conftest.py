"""
The fault tier's fleet: two masters of masters (a leader and a standby, both
running the kiosk_scheduler engine over one database), a campus of two relays
each running one salt-syndic per master of masters, and kiosks that list both
relays as masters (multi-master), writing job results into a private MariaDB
server. Tests stop and start its daemons for real, so the fleet is its own
(started once for this directory), never shared with tests/integration; each
test leaves every daemon running when it ends.
"""

import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import yaml
from pytestshellutils.exceptions import FactoryNotStarted
from pytestshellutils.utils import ports

from salt_kiosk import inventory, topology
from salt_kiosk.db import store
from salt_kiosk.node import wol
from tests.conftest import REPO_ROOT
from tests.mariadb_server import PrivateMariaDB

FAKE_POWER = os.path.join(REPO_ROOT, "demo", "fake_power.py")

RELAYS = {"relay-e1": "127.0.3.2", "relay-e2": "127.0.3.3"}
#: The masters of masters: the first starts first and leads the engine.
MOMS = {"faults-mom-a": "127.0.3.21", "faults-mom-b": "127.0.3.22"}
#: The engine's tick on both masters of masters (the lease is 1.5 x tick).
TICK = 2
KIOSKS = {
    # minion id: (code, mac, ip)
    "kiosk-e1": ("E01", "02:00:00:00:3e:01", "127.0.3.11"),
    "kiosk-e2": ("E02", "02:00:00:00:3e:02", "127.0.3.12"),
}
CAMPUS = {"east": {"timezone": "Asia/Shanghai", "broadcast": "127.255.255.255", "relays": list(RELAYS)}}


def wait_for(predicate, timeout, step=0.5):
    """Poll ``predicate`` until it is truthy or ``timeout`` seconds passed; return its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = predicate()
    return value


def engine_status(run):
    """``kiosk_power.engine_status`` through a ``salt-run`` CLI."""
    ret = run.run("kiosk_power.engine_status")
    assert ret.returncode == 0, ret
    return ret.data


def kiosks_answer(cli):
    """True when every kiosk answers ``test.ping`` through this master of masters."""
    ret = cli.run("test.ping", minion_tgt="kiosk-*")
    return isinstance(ret.data, dict) and ret.data == dict.fromkeys(KIOSKS, True)


def next_minute(tz, at_least=25):
    """The next whole minute in ``tz`` at least ``at_least`` seconds away."""
    now = datetime.datetime.now(tz)
    start = (now + datetime.timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (start - now).total_seconds() < at_least:
        start += datetime.timedelta(minutes=1)
    return start


def rule_args(name, start, minutes, target):
    """``kiosk_power.rule_add`` arguments: ``on`` from ``start`` for ``minutes`` (at most to midnight)."""
    end = start + datetime.timedelta(minutes=minutes)
    end_text = "24:00" if end.date() != start.date() else f"{end:%H:%M}"
    return [
        "kiosk_power.rule_add",
        name,
        "state=on",
        f"dates={start.date().isoformat()}",
        f"start={start:%H:%M}",
        f"end={end_text}",
        f"target={target}",
        "priority=50",
    ]


class MagicPackets:
    """Magic packets to the campus broadcast (the fleet's ``wol_port``), collected while open."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", port))
        self.sock.settimeout(0.5)
        self.packets = []  # (mac, sender, when)

    def collect(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            for _code, mac, _ip in KIOSKS.values():
                if wol.is_magic_packet(data, mac):
                    self.packets.append((mac, addr[0], datetime.datetime.now(datetime.timezone.utc)))

    def of(self, minion):
        return [p for p in self.packets if p[0] == KIOSKS[minion][1]]

    def close(self):
        self.sock.close()


#: Where bench/failover.py collects the figures the fault tests measure.
FIGURES_ENV = "KIOSK_FAILOVER_FIGURES"


def record_figure(name, value):
    """Append one measured figure to the file named by $KIOSK_FAILOVER_FIGURES, if set."""
    path = os.environ.get(FIGURES_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"name": name, "value": value}) + "\n")


class StandbySyndic:
    """
    A relay's second salt-syndic, serving the standby master of masters: the
    relay's own master and minion configuration with one ``syndic_master``,
    its own pid and log files, started and stopped as a real daemon.
    """

    def __init__(self, syndic, mom_address, mom_ret):
        self.config_dir = os.path.join(syndic.config["root_dir"], "conf-standby")
        os.makedirs(os.path.join(self.config_dir, "master.d"), exist_ok=True)
        source = os.path.dirname(syndic.config_file)
        shutil.copy2(os.path.join(source, "master"), os.path.join(self.config_dir, "master"))
        shutil.copy2(os.path.join(source, "minion"), os.path.join(self.config_dir, "minion"))
        with open(os.path.join(source, "master.d", "syndic.conf"), encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
        config.update(topology.syndic(mom_address, mom_ret, name="standby"))
        config.pop("pytest-syndic", None)  # no log forwarding to the test's log server
        with open(os.path.join(self.config_dir, "master.d", "syndic.conf"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle)
        self.pidfile = os.path.join(config["root_dir"], config["syndic_pidfile"])
        self.proc = None

    def start(self):
        salt_syndic = os.path.join(os.path.dirname(sys.executable), "salt-syndic")
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [salt_syndic, "-c", self.config_dir, "--log-level=quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not os.path.exists(self.pidfile):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the standby salt-syndic did not start (config {self.config_dir})")
            time.sleep(0.2)

    def terminate(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None


class Campus:
    """The running fault fleet: the master of masters, the relays' daemons, the kiosks."""

    def __init__(self, moms, mariadb):
        self.moms = moms  # master id -> factory, the first leads at start
        self.mom = moms["faults-mom-a"]
        self.mariadb = mariadb
        self.relays = {}  # relay id -> (master, syndic, standby syndic, minion)
        self.kiosks = {}
        self.file_root = None
        self.release_sources = None
        self.release_root = {}  # relay id -> the file root its releases are staged into
        self.timezone = CAMPUS["east"]["timezone"]

    def release_dir(self, kiosk):
        """Where ``kiosk`` installs releases."""
        return self.kiosks[kiosk].config["kiosk"]["release_dir"]

    def relay_daemons(self, relay):
        return list(self.relays[relay])

    def leader_and_standby(self, run):
        """``(leader id, standby id)`` of the masters of masters, as the engine's lease says."""
        status = wait_for(lambda: (engine_status(run).get("leader") or {}).get("alive") and engine_status(run), 60)
        assert status, engine_status(run)
        leader_id = next(name for name, address in MOMS.items() if address == status["leader"]["master"])
        return leader_id, next(name for name in MOMS if name != leader_id)

    def kill_mom(self, mom_id):
        """SIGKILL a master of masters and every process it started (its engine too), as a crash would."""
        factory = self.moms[mom_id]
        with open(factory.config["pidfile"], encoding="utf-8") as handle:
            parent = psutil.Process(int(handle.read().strip()))
        family = parent.children(recursive=True) + [parent]
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(family, timeout=30)
        factory.terminate()

    def restart_syndics_for(self, mom_id):
        """
        Restart every relay's salt-syndic serving ``mom_id`` (after that master
        restarted). Salt 3008.4 on tcp sometimes leaves a master that restarted
        right after a SIGKILL answering no request ("Error in pool routing:
        Already reading" in its log; cf. Salt #32149): a syndic then never
        starts, and the master is restarted once more before trying again.
        """
        for attempt in (1, 2):
            try:
                for relay in self.relays:
                    syndic = self.syndic_for(relay, mom_id)
                    syndic.terminate()
                    if isinstance(syndic, StandbySyndic):
                        syndic.start()
                    else:
                        syndic.start(max_start_attempts=1, start_timeout=60)
                return
            except FactoryNotStarted:
                if attempt == 2:
                    raise
                print(f"a syndic of {mom_id} did not start: restarting {mom_id} once more")
                self.moms[mom_id].terminate()
                self.moms[mom_id].start()

    def syndic_for(self, relay, mom_id):
        """The salt-syndic of ``relay`` that serves the master of masters ``mom_id``."""
        return self.relays[relay][1] if mom_id == "faults-mom-a" else self.relays[relay][2]

    def stop_relay(self, relay):
        for daemon in reversed(self.relay_daemons(relay)):
            daemon.terminate()

    def start_relay(self, relay):
        for daemon in self.relay_daemons(relay):
            daemon.start()

    def sql(self, statement):
        return self.mariadb.sql(statement.replace("{db}", "kiosk_faults"))


@pytest.fixture(scope="package")
def campus(salt_factories, tmp_path_factory):
    mariadb = PrivateMariaDB(str(tmp_path_factory.mktemp("faults-mariadb")))
    mariadb.install()
    mariadb.start()
    mariadb.sql("CREATE DATABASE kiosk_faults")
    db_url = mariadb.url.replace("/kiosk_outage?", "/kiosk_faults?")
    mom_pub, mom_ret = ports.get_unused_localhost_port(), ports.get_unused_localhost_port()
    # Every relay of the campus listens on the same ret_port (its own address):
    # a kiosk's master list is plain addresses with one master_port. The same
    # holds one level up: both masters of masters listen on the same ports, each
    # on its own address, because a syndic has one syndic_master_port and joins
    # the publisher with its own publish_port.
    relay_ret = ports.get_unused_localhost_port()
    wol_port = ports.get_unused_localhost_port()
    release_sources = str(tmp_path_factory.mktemp("faults-release-sources"))
    moms = {}
    for master_id, address in MOMS.items():
        overrides = dict(
            # master_id is the address as the syndics list it: a syndic sends a
            # return to the syndic_master entry equal to the job's master_id.
            topology.mom(address, mom_pub, mom_ret, master_id=address, auto_accept=True),
            kiosk={
                "db": db_url,
                "campuses": CAMPUS,
                "wol_port": wol_port,
                # Releases: published from here, served to the relays on this master's address.
                "release_sources": [release_sources],
                "release_serve_address": address,
            },
            # As the formula's central role configures it. With Salt's default
            # local_cache, a master of masters that gets (through its own
            # syndic) a return of a job the other one published may fail in
            # local_cache.get_load (no .minions.p yet); the syndic then takes
            # the error for a pending reply and never forwards again
            # ("'str' object has no attribute 'done'").
            master_job_cache="kiosk_mysql",
            kiosk_mysql={"db": db_url, "master_id": address},
            engines=[
                {
                    "kiosk_scheduler": {
                        "tick": TICK,
                        "grace": 60,
                        "sweep_delays": [30],
                        "shutdown_delay": 0,
                        # The other master of masters: both must use this database.
                        "peers": [other for other in MOMS.values() if other != address],
                    }
                }
            ],
        )
        moms[master_id] = salt_factories.salt_master_daemon(master_id, overrides=overrides)
    mom = moms["faults-mom-a"]
    fleet = Campus(moms, mariadb)
    file_root = str(tmp_path_factory.mktemp("faults-file-root"))
    os.makedirs(os.path.join(file_root, "faults"))
    with open(os.path.join(file_root, "faults", "hello.txt"), "w", encoding="utf-8") as handle:
        handle.write("delivered through whichever relay is up\n")
    fleet.file_root = file_root
    fleet.release_sources = release_sources
    with contextlib.ExitStack() as stack:
        stack.callback(mariadb.stop)
        # The masters of masters share one key pair: a syndic caches one master key.
        standby = moms["faults-mom-b"]
        os.makedirs(standby.config["pki_dir"], exist_ok=True)
        stack.enter_context(mom.started())
        for name in ("master.pem", "master.pub"):
            shutil.copy2(os.path.join(mom.config["pki_dir"], name), os.path.join(standby.config["pki_dir"], name))
        stack.enter_context(standby.started())
        shared_key = None
        for relay, address in RELAYS.items():
            release_root = str(tmp_path_factory.mktemp(f"faults-{relay}-releases"))
            fleet.release_root[relay] = release_root
            syndic = mom.salt_syndic_daemon(
                relay,
                overrides=topology.syndic(MOMS["faults-mom-a"], mom_ret),
                master_overrides=dict(
                    topology.syndic_master(address, relay_ret, mom_pub, auto_accept=True),
                    file_roots={"base": [file_root, release_root]},
                    master_job_cache="kiosk_mysql",
                    kiosk_mysql={"db": db_url, "master_id": relay},
                ),
                minion_overrides=dict(
                    topology.minion(address, relay_ret, mom_pub),
                    kiosk={"wol_source": address, "release_root": release_root},
                ),
            )
            pki = syndic.master.config["pki_dir"]
            if shared_key is None:
                shared_key = pki
            else:
                # The relays of a campus share one master key pair: a kiosk caches one master key.
                os.makedirs(pki, exist_ok=True)
                for name in ("master.pem", "master.pub"):
                    shutil.copy2(os.path.join(shared_key, name), os.path.join(pki, name))
            syndic.master.start()
            stack.callback(syndic.master.terminate)
            syndic.start()
            stack.callback(syndic.terminate)
            # One salt-syndic per master of masters (see salt_kiosk.topology).
            second = StandbySyndic(syndic, MOMS["faults-mom-b"], mom_ret)
            second.start()
            stack.callback(second.terminate)
            syndic.minion.start()
            stack.callback(syndic.minion.terminate)
            fleet.relays[relay] = (syndic.master, syndic, second, syndic.minion)
        first_master = fleet.relays["relay-e1"][0]
        for kiosk_id in KIOSKS:
            power_log = os.path.join(str(salt_factories.root_dir), f"faults-{kiosk_id}-power.log")
            kiosk = first_master.salt_minion_daemon(
                kiosk_id,
                overrides=dict(
                    topology.minion(list(RELAYS.values()), relay_ret, mom_pub),
                    # A scheduled power-off only logs the request.
                    kiosk={
                        "shutdown_command": [sys.executable, FAKE_POWER, power_log, "{action}", "{delay}", "{message}"],
                        "release_dir": os.path.join(str(salt_factories.root_dir), f"faults-{kiosk_id}-releases"),
                    },
                    # Two jobs may arrive through two relays: the minion's jid queue runs each once.
                    minion_jid_queue_hwm=100,
                ),
            )
            kiosk.start()
            stack.callback(kiosk.terminate)
            fleet.kiosks[kiosk_id] = kiosk
        kstore = store.open_store(
            {
                "cachedir": str(tmp_path_factory.mktemp("faults-cache")),
                "order_masters": True,
                "kiosk": {"db": db_url, "campuses": CAMPUS},
            }
        )
        csv = "code,minion_id,campus,groups,ip,mac,vnc_port\n" + "".join(
            f"{code},{minion},east,opd,{ip},{mac},\n" for minion, (code, mac, ip) in KIOSKS.items()
        )
        inventory.import_text(kstore, csv, "faults.csv")
        store.dispose_all()
        fleet.wol_port = wol_port
        yield fleet
