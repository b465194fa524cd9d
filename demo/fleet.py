"""
A local salt-kiosk fleet on loopback, started from plain config files with the
real ``salt-master`` / ``salt-syndic`` / ``salt-minion`` programs of the running
Python's environment. Used by the demo and the benchmarks (the test suite uses
pytest-salt-factories with the same settings from ``salt_kiosk.topology``).

Layout: a master of masters on 127.0.0.1; per relay a syndic node (salt-master +
salt-syndic + the relay's own minion) on its own 127.0.0.x address; kiosk
minions below their campus's first relay.
"""

import getpass
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import yaml

from salt_kiosk import topology

BIN = os.path.dirname(os.path.abspath(sys.executable))
HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_POWER = os.path.join(HERE, "fake_power.py")
SRV_SALT = os.path.join(os.path.dirname(HERE), "srv", "salt")
MOM_ADDR = "127.0.0.1"


#: Listening ports are taken below the kernel's ephemeral range: a port the
#: kernel handed out with bind(0) can be taken by any outgoing connection
#: before the daemon binds it (on a busy machine the master of masters then
#: never listened, and the whole fleet stayed silent).
PORT_RANGE = (20000, 32000)


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(address, _taken=set()):  # noqa: B006  (the ports this process handed out)
    high = min(PORT_RANGE[1], _ephemeral_low() - 1)
    for _ in range(200):
        port = random.randint(PORT_RANGE[0], high)
        if port in _taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((address, port))
            except OSError:
                continue
        _taken.add(port)
        return port
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def last_document(out):
    """
    The last JSON document of ``out`` (a long runner prints its progress
    events before its result, each as a document of its own), or ``out`` itself
    when it holds no JSON; None when it is empty.
    """
    if not out:
        return None
    decoder, index, data = json.JSONDecoder(), 0, out
    while index < len(out):
        try:
            data, index = decoder.raw_decode(out, index)
        except json.JSONDecodeError:
            return out if index == 0 else data
        while index < len(out) and out[index].isspace():
            index += 1
    return data


def write_config(path, data):
    """
    Write a daemon's config, and make the directories it names. A node's master,
    syndic and minion start within a second of each other and share some of
    them; Salt's own check makes a missing directory without ``exist_ok`` and
    exits with the errno (17) when another daemon made it first.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle, default_flow_style=False)
    for key in ("cachedir", "sock_dir"):
        if key in data:
            os.makedirs(data[key], exist_ok=True)
    if "cachedir" in data:
        os.makedirs(os.path.join(data["cachedir"], "extmods"), exist_ok=True)
    if "pki_dir" in data:
        os.makedirs(data["pki_dir"], mode=0o700, exist_ok=True)
    for key in ("log_file", "pidfile"):
        if key in data:
            os.makedirs(os.path.dirname(data[key]), exist_ok=True)


class LocalFleet:
    """
    ``campuses``: ``{name: {"timezone", "broadcast", "relays": {id: address},
    "kiosks": [minion ids]}}``.
    """

    def __init__(self, workdir, campuses, kiosk_settings=None, engine=None):
        self.workdir = workdir
        self.campuses = campuses
        self.kiosk_settings = kiosk_settings or {}
        self.engine = engine
        self.procs = []
        self.user = getpass.getuser()
        self.mom_pub = free_port(MOM_ADDR)
        self.mom_ret = free_port(MOM_ADDR)
        self.relay_ret = {}
        self.power_log = {}

    @property
    def relays(self):
        return {relay: address for c in self.campuses.values() for relay, address in c["relays"].items()}

    @property
    def kiosks(self):
        return [k for c in self.campuses.values() for k in c.get("kiosks", [])]

    def central_db_url(self):
        """The store of the master of masters (``kiosk:db`` or its embedded SQLite file)."""
        if self.kiosk_settings.get("db"):
            return self.kiosk_settings["db"]
        return "sqlite:///" + os.path.join(self.workdir, "mom", "cache", "master", "kiosk", "kiosk.sqlite3")

    def release_root(self, relay):
        """The relay master's file root that releases are staged into."""
        return os.path.join(self.workdir, relay, "file-root")

    def release_dir(self, kiosk):
        """Where a kiosk installs releases (``current`` is the active one)."""
        return os.path.join(self.workdir, kiosk, "releases")

    def release_sources(self):
        """The master of masters' ``kiosk:release_sources`` directory: releases are published from here."""
        return os.path.join(self.workdir, "release-sources")

    def conf(self, name):
        return os.path.join(self.workdir, name, "conf")

    def _base(self, name, role):
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
        mom = self._base("mom", "master")
        mom.update(topology.mom(MOM_ADDR, self.mom_pub, self.mom_ret, auto_accept=True))
        if self.engine is not None:
            mom["engines"] = [{"kiosk_scheduler": dict(self.engine)}]
        # Relay sensor readings reach the store through the event return.
        mom["event_return"] = "kiosk_mysql"
        mom["event_return_whitelist"] = ["salt/beacon/*/kiosk_env/*"]
        mom["kiosk"] = dict(self.kiosk_settings)
        # publish reads release files only from kiosk:release_sources; the
        # relays fetch them from the master's own address.
        os.makedirs(self.release_sources(), exist_ok=True)
        mom["kiosk"].setdefault("release_sources", [self.release_sources()])
        mom["kiosk"].setdefault("release_serve_address", MOM_ADDR)
        # CSVs are imported only from kiosk:import_dirs (the caller's and the
        # work directory); token files are written only into kiosk:vnc_token_dir.
        mom["kiosk"]["import_dirs"] = list(self.kiosk_settings.get("import_dirs") or []) + [self.workdir]
        mom["kiosk"].setdefault("vnc_token_dir", os.path.join(self.workdir, "websockify-tokens"))
        os.makedirs(mom["kiosk"]["vnc_token_dir"], exist_ok=True)
        mom["kiosk"]["campuses"] = {
            name: {"timezone": c["timezone"], "broadcast": c["broadcast"], "relays": list(c["relays"])}
            for name, c in self.campuses.items()
        }
        write_config(os.path.join(self.conf("mom"), "master"), mom)
        for campus in self.campuses.values():
            first = None
            for relay, address in campus["relays"].items():
                ret_port = free_port(address)
                self.relay_ret[relay] = ret_port
                first = first or (relay, address, ret_port)
                master = self._base(relay, "master")
                master.update(topology.syndic_master(address, ret_port, self.mom_pub, auto_accept=True))
                master.update(topology.syndic(MOM_ADDR, self.mom_ret))
                master["syndic_log_file"] = os.path.join(self.workdir, relay, "log", "syndic.log")
                master["syndic_pidfile"] = os.path.join(self.workdir, relay, "run", "syndic.pid")
                # Releases are staged into a file root of the relay's master;
                # the kiosks below run the formula's kiosk.release at start.
                release_root = self.release_root(relay)
                os.makedirs(release_root, exist_ok=True)
                master["file_roots"] = {"base": [SRV_SALT, release_root]}
                # Job returns go to the central store (here the master of
                # masters' embedded SQLite file) through the kiosk_mysql returner.
                master["master_job_cache"] = "kiosk_mysql"
                master["kiosk_mysql"] = {"db": self.central_db_url(), "master_id": relay}
                write_config(os.path.join(self.conf(relay), "master"), master)
                minion = self._base(relay, "minion")
                minion.update(topology.minion(address, ret_port, self.mom_pub))
                minion["kiosk"] = {"wol_source": address, "release_root": release_root}
                write_config(os.path.join(self.conf(relay), "minion"), minion)
            for kiosk in campus.get("kiosks", []):
                config = self._base(kiosk, "minion")
                config.update(topology.minion(first[1], first[2]))
                log = os.path.join(self.workdir, kiosk, "power.log")
                self.power_log[kiosk] = log
                config["kiosk"] = {
                    "shutdown_command": [sys.executable, FAKE_POWER, log, "{action}", "{delay}", "{message}"],
                    "release_dir": self.release_dir(kiosk),
                }
                config["startup_states"] = "sls"
                config["sls_list"] = ["kiosk.release"]
                write_config(os.path.join(self.conf(kiosk), "minion"), config)

    def _pregenerate_minion_keys(self):
        """
        Create every minion's key pair before the daemons start, so a minion
        never signs in while its key files are still being written.
        """
        import salt.crypt  # pylint: disable=import-outside-toplevel

        for name in list(self.relays) + self.kiosks:
            pki = os.path.join(self.workdir, name, "pki", "minion")
            if not os.path.exists(os.path.join(pki, "minion.pem")):
                os.makedirs(pki, mode=0o700, exist_ok=True)
                salt.crypt.write_keys(pki, "minion", 2048)

    def _start(self, name, program):
        out = open(os.path.join(self.workdir, name, f"{program}.out"), "wb")
        proc = subprocess.Popen(
            [os.path.join(BIN, program), "-c", self.conf(name), "-l", "quiet"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((f"{program} ({name})", proc))

    def start(self, timeout=180):
        """Start every daemon and wait until every minion answers the master of masters."""
        self.configure()
        self._pregenerate_minion_keys()
        self._start("mom", "salt-master")
        time.sleep(2)
        for relay in self.relays:
            self._start(relay, "salt-master")
        time.sleep(2)
        for relay in self.relays:
            self._start(relay, "salt-syndic")
            self._start(relay, "salt-minion")
        for kiosk in self.kiosks:
            self._start(kiosk, "salt-minion")
        return self.wait(timeout)

    def _restart_minion(self, name):
        for index, (label, proc) in enumerate(self.procs):
            if label == f"salt-minion ({name})":
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=30)
                del self.procs[index]
                self._start(name, "salt-minion")
                return

    def wait(self, timeout):
        want = set(self.relays) | set(self.kiosks)
        deadline = time.time() + timeout
        restart_at = time.time() + timeout / 2
        answered = {}
        while time.time() < deadline:
            if restart_at and time.time() > restart_at:
                # A minion that lost its first sign-in race may give up; start it once more.
                restart_at = None
                silent = want - {k for k, v in (answered if isinstance(answered, dict) else {}).items() if v is True}
                for name in sorted(silent):
                    print(f"  {name} has not answered yet; restarting its salt-minion")
                    self._restart_minion(name)
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early with {proc.returncode}; see {self.workdir}")
            answered = self.cli("salt", "*", "test.ping", "-t", "5", check=False) or {}
            if isinstance(answered, dict) and want <= {k for k, v in answered.items() if v is True}:
                return answered
            time.sleep(2)
        raise RuntimeError(f"fleet did not come up in {timeout}s (answered: {answered}); logs in {self.workdir}")

    def stop(self, report=print):
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
            report(f"  stopped {name}")
        self.procs = []

    def cli(self, program, *args, check=True, timeout=300):
        """Run ``salt`` / ``salt-run`` against the master of masters; return the parsed JSON output."""
        static = ["--static"] if program == "salt" else []
        cmd = [os.path.join(BIN, program), "-c", self.conf("mom"), "--out=json", *static, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out = proc.stdout.strip()
        data = last_document(out)
        if check and proc.returncode != 0 and not isinstance(data, (dict, list)):
            raise RuntimeError(f"{program} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return data
