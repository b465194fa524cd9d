"""
Shared fixtures: the MariaDB test database and the real Salt test fleet.

See tests/README.md for what each fixture starts and how long it lives.
"""

import contextlib
import os
import sys
import uuid

import pymysql
import pytest
import sqlalchemy as sa
from pytestshellutils.utils import ports

from salt_kiosk import topology
from salt_kiosk.db import store

MYSQL_HOST = os.environ.get("KIOSK_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("KIOSK_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("KIOSK_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("KIOSK_TEST_MYSQL_PASSWORD", "")

#: The test fleet: two campuses, two relays (syndic nodes) each, two kiosks each.
#: Kiosks are minions of their campus's first relay.
CAMPUSES = {
    "east": {
        "timezone": "Asia/Shanghai",
        "broadcast": "127.255.255.255",
        "relays": {"relay-e1": "127.0.0.2", "relay-e2": "127.0.0.4"},
        "kiosks": ["kiosk-e1", "kiosk-e2"],
    },
    "west": {
        "timezone": "Europe/Berlin",
        "broadcast": "127.255.255.255",
        "relays": {"relay-w1": "127.0.0.3", "relay-w2": "127.0.0.5"},
        "kiosks": ["kiosk-w1", "kiosk-w2"],
    },
}

#: MAC and IP of each test kiosk in the fleet inventory.
KIOSK_NET = {
    "kiosk-e1": ("E01", "02:00:00:00:0e:01", "127.0.1.11", "opd;pay"),
    "kiosk-e2": ("E02", "02:00:00:00:0e:02", "127.0.1.12", "opd"),
    "kiosk-w1": ("W01", "02:00:00:00:0f:01", "127.0.2.11", "pay"),
    "kiosk-w2": ("W02", "02:00:00:00:0f:02", "127.0.2.12", ""),
}

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_POWER = os.path.join(REPO_ROOT, "demo", "fake_power.py")


def _mysql_admin(sql):
    conn = pymysql.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD, autocommit=True
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
    finally:
        conn.close()


@contextlib.contextmanager
def throwaway_database(prefix):
    """Create a uniquely named database on the local server; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # The server's default collation on purpose: the schema must not depend on it.
    _mysql_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa.engine.URL.create(
        "mysql+pymysql",
        username=MYSQL_USER,
        password=MYSQL_PASSWORD or None,
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        database=name,
        query={"charset": "utf8mb4"},
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        store.dispose_all()
        _mysql_admin(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def mysql_url():
    """SQLAlchemy URL of a throwaway MariaDB database for the whole session."""
    with throwaway_database("kiosk_test") as url:
        yield url


@pytest.fixture
def mysql_db():
    """A fresh throwaway MariaDB database for one test."""
    with throwaway_database("kiosk_t") as url:
        yield url


def campus_config():
    """The ``kiosk:campuses`` section matching :data:`CAMPUSES`."""
    return {
        name: {"timezone": c["timezone"], "broadcast": c["broadcast"], "relays": list(c["relays"])}
        for name, c in CAMPUSES.items()
    }


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    return {
        "root_dir": str(tmp_path_factory.mktemp("fleet")),
        "start_timeout": 120,
    }


class Fleet:
    """The running test fleet: the master of masters, syndic nodes and minions."""

    def __init__(self, mom):
        self.mom = mom
        self.syndics = {}
        self.relay_minions = {}
        self.kiosks = {}
        self.campus_of = {}
        self.relay_address = {}
        self.power_log = {}
        self.release_root = {}
        self.release_dir = {}

    @property
    def minion_ids(self):
        return sorted(["central"] + list(self.relay_minions) + list(self.kiosks))

    def salt_cli(self, **kwargs):
        kwargs.setdefault("timeout", 60)
        return self.mom.salt_cli(**kwargs)

    def salt_run_cli(self, **kwargs):
        kwargs.setdefault("timeout", 120)
        return self.mom.salt_run_cli(**kwargs)


@pytest.fixture(scope="session")
def fleet(salt_factories, mysql_url):
    """
    Start the real fleet on loopback: the master of masters on 127.0.0.1, one
    syndic node (salt-master + salt-syndic + the relay's own minion) per relay on
    its own 127.0.0.x address, and the kiosk minions below each campus's relay.
    """
    mom_pub = ports.get_unused_localhost_port()
    mom_ret = ports.get_unused_localhost_port()
    mom_overrides = topology.mom("127.0.0.1", mom_pub, mom_ret, auto_accept=True)
    wol_port = ports.get_unused_localhost_port()
    mom_overrides["kiosk"] = {"db": mysql_url, "campuses": campus_config(), "wol_port": wol_port}
    # Releases are published only from this directory (kiosk:release_sources)
    # and served to the relays on the master's loopback address.
    release_sources = os.path.join(str(salt_factories.root_dir), "release-sources")
    os.makedirs(release_sources, exist_ok=True)
    mom_overrides["kiosk"].update(release_sources=[release_sources], release_serve_address="127.0.0.1")
    # Inventory CSVs are read only from kiosk:import_dirs: the session's pytest
    # base directory, where every test's tmp_path lives. Token files go only
    # into kiosk:vnc_token_dir.
    vnc_token_dir = os.path.join(str(salt_factories.root_dir), "websockify-tokens")
    os.makedirs(vnc_token_dir, exist_ok=True)
    mom_overrides["kiosk"].update(import_dirs=[os.path.dirname(str(salt_factories.root_dir))],
                                  vnc_token_dir=vnc_token_dir)
    # Sensor readings and alerts from the relays' kiosk_env beacons reach the
    # central database through the master of masters' event return.
    mom_overrides["event_return"] = "kiosk_mysql"
    mom_overrides["event_return_whitelist"] = ["salt/beacon/*/kiosk_env/*"]
    # The schedule engine, with short sweeps so that tests can watch them.
    mom_overrides["engines"] = [
        {"kiosk_scheduler": {"tick": 2, "grace": 120, "sweep_delays": [2, 4, 6], "shutdown_delay": 0}}
    ]
    # The formula's power alert reactor (srv/salt served by this master) with
    # both hooks in the master config: mail through the central minion, and a
    # stand-in zabbix_sender that logs its arguments (one JSON list per line).
    zabbix_log = os.path.join(str(salt_factories.root_dir), "zabbix-sender.jsonl")
    zabbix_sender = os.path.join(str(salt_factories.root_dir), "zabbix_sender")
    with open(zabbix_sender, "w", encoding="utf-8") as handle:
        handle.write(f"#!{sys.executable}\nimport json, sys\nwith open({zabbix_log!r}, 'a') as log:\n"
                     "    log.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    os.chmod(zabbix_sender, 0o755)
    mom_overrides["file_roots"] = {"base": [os.path.join(REPO_ROOT, "srv", "salt")]}
    mom_overrides["reactor"] = [{"kiosk/alert/power/*": ["salt://reactor/power_alert.sls"]}]
    mom_overrides["kiosk"]["alerts"] = {
        "mail": {"to": "ops@hospital.example", "minion": "central"},
        "zabbix_sender": {"server": "127.0.0.1", "host": "kiosk-fleet", "key": "kiosk.power.alert",
                          "command": zabbix_sender},
    }
    api_port = ports.get_unused_localhost_port()
    eauth_file = os.path.join(str(salt_factories.root_dir), "eauth-users")
    with open(eauth_file, "w", encoding="utf-8") as handle:
        handle.write("kiosk-ops:ops-secret\nviewer:viewer-secret\njobs-ops:jobs-secret\n")
    mom_overrides.update(
        rest_cherrypy={"host": "127.0.0.1", "port": api_port, "disable_ssl": True},
        netapi_enable_clients=["runner"],
        external_auth={
            "file": {
                "^filename": eauth_file,
                "kiosk-ops": [{"@runner": ["kiosk_power.*"]}],
                "viewer": [{"@runner": ["jobs.list_jobs"]}],
                # May run unit-split jobs, but publish only test.ping / test.echo to kiosks.
                "jobs-ops": [{"@runner": ["kiosk_jobs.*"]}, {"kiosk-*": ["test.ping", "test.echo"]}],
            }
        },
    )
    mom = salt_factories.salt_master_daemon("mom", order_masters=True, overrides=mom_overrides)
    fleet = Fleet(mom)
    fleet.wol_port = wol_port
    fleet.api_port = api_port
    fleet.zabbix_log = zabbix_log
    fleet.release_sources = release_sources
    with contextlib.ExitStack() as stack:
        stack.enter_context(mom.started())
        # The central master's own minion: applies the central states (rules from pillar).
        central = mom.salt_minion_daemon(
            "central",
            overrides=dict(topology.minion("127.0.0.1", mom_ret),
                           kiosk={"db": mysql_url, "campuses": campus_config(), "role": "central"}),
        )
        stack.enter_context(central.started())
        fleet.central = central
        for campus, spec in CAMPUSES.items():
            for relay, address in spec["relays"].items():
                ret_port = ports.get_unused_localhost_port()
                release_root = os.path.join(str(salt_factories.root_dir), f"{relay}-file-root")
                os.makedirs(release_root, exist_ok=True)
                fleet.release_root[relay] = release_root
                syndic = mom.salt_syndic_daemon(
                    relay,
                    overrides=topology.syndic("127.0.0.1", mom_ret),
                    master_overrides=dict(
                        topology.syndic_master(address, ret_port, mom_pub, auto_accept=True),
                        # The checkout is served to the minions below, as a real
                        # campus relay serves it (saltutil.sync_all path), with
                        # the formula's SLS and the relay's release staging root.
                        file_roots={"base": [REPO_ROOT, os.path.join(REPO_ROOT, "srv", "salt"), release_root]},
                        # Every syndic master writes job loads and returns centrally.
                        master_job_cache="kiosk_mysql",
                        kiosk_mysql={"db": mysql_url, "master_id": relay},
                    ),
                    minion_overrides=dict(
                        topology.minion(address, ret_port, mom_pub),
                        kiosk={"wol_source": address, "release_root": release_root},
                        # Beacons run every loop_interval (salt-factories' default is slower).
                        loop_interval=1,
                    ),
                )
                stack.enter_context(syndic.master.started())
                stack.enter_context(syndic.started())
                stack.enter_context(syndic.minion.started())
                fleet.syndics[relay] = syndic
                fleet.relay_minions[relay] = syndic.minion
                fleet.campus_of[relay] = campus
                fleet.relay_address[relay] = address
            relay = next(iter(spec["relays"]))
            address = spec["relays"][relay]
            syndic_master = fleet.syndics[relay].master
            for kiosk_id in spec["kiosks"]:
                power_log = os.path.join(str(salt_factories.root_dir), f"{kiosk_id}-power.log")
                release_dir = os.path.join(str(salt_factories.root_dir), f"{kiosk_id}-releases")
                kiosk = syndic_master.salt_minion_daemon(
                    kiosk_id,
                    overrides=dict(
                        topology.minion(address, syndic_master.config["ret_port"]),
                        kiosk={
                            "shutdown_command": [sys.executable, FAKE_POWER, power_log, "{action}", "{delay}", "{message}"],
                            "release_dir": release_dir,
                        },
                        # A kiosk that was off during a publish upgrades when it starts.
                        startup_states="sls",
                        sls_list=["kiosk.release"],
                    ),
                )
                fleet.power_log[kiosk_id] = power_log
                fleet.release_dir[kiosk_id] = release_dir
                stack.enter_context(kiosk.started())
                fleet.kiosks[kiosk_id] = kiosk
                fleet.campus_of[kiosk_id] = campus
        yield fleet


@pytest.fixture(scope="module")
def salt_api(fleet):
    """salt-api (rest_cherrypy, file eauth) on the master of masters for one test module; its base URL."""
    daemon = fleet.mom.salt_api_daemon()
    with daemon.started():
        yield f"http://127.0.0.1:{fleet.api_port}"


def api_login(api, user, password):
    """Log in to salt-api with the ``file`` eauth backend; return the token."""
    import requests  # pylint: disable=import-outside-toplevel

    resp = requests.post(f"{api}/login", json={"username": user, "password": password, "eauth": "file"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["return"][0]["token"]


def fleet_inventory_csv():
    """The inventory CSV describing the test fleet's kiosks."""
    lines = ["code,minion_id,campus,groups,ip,mac,vnc_port"]
    for campus, spec in CAMPUSES.items():
        for index, minion in enumerate(spec["kiosks"]):
            code, mac, ip, groups = KIOSK_NET[minion]
            lines.append(f"{code},{minion},{campus},{groups},{ip},{mac},{5900 + index}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def fleet_inventory(fleet, tmp_path_factory):
    """Import the fleet's inventory through salt-run once; return the kiosks listed back."""
    path = tmp_path_factory.mktemp("inventory") / "fleet.csv"
    path.write_text(fleet_inventory_csv())
    ret = fleet.salt_run_cli().run("kiosk_inventory.import_csv", str(path), "replace=True")
    assert ret.returncode == 0, ret
    listed = fleet.salt_run_cli().run("kiosk_inventory.list")
    assert len(listed.data) == len(KIOSK_NET), listed
    return listed.data


def pytest_unconfigure(config):
    # Salt's log handlers may flush into streams pytest has already closed at
    # interpreter exit; that is noise, not a failure.
    import logging

    logging.raiseExceptions = False
