"""
The integration tier's fixtures: the real Salt test fleet (started once per
session, on the first test that asks for it), salt-api on it, and its
inventory. See tests/README.md ("The fleet").
"""

import contextlib
import os
import shutil
import socket
import sys

import pytest
from pytestshellutils.utils import ports

from salt_kiosk import console, topology
from tests.conftest import CAMPUSES, KIOSK_NET, REPO_ROOT, campus_config, fleet_inventory_csv

FAKE_POWER = os.path.join(REPO_ROOT, "demo", "fake_power.py")

#: The runner functions the console's views read (as the formula's kiosk-viewer role has them).
CONSOLE_READ = [
    "kiosk_inventory.fleet",
    "kiosk_inventory.list",
    "kiosk_inventory.history",
    "kiosk_inventory.asset",
    "kiosk_power.plan",
    "kiosk_power.rule_list",
    "kiosk_power.events",
    "kiosk_sweep.results",
    "kiosk_release.list",
    "kiosk_release.status",
    "kiosk_jobs.recent",
    "kiosk_env.series",
]


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


class Capture:
    """A UDP listener (on a free port by default) collecting Wake-on-LAN packets as (payload, source address)."""

    def __init__(self, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(("0.0.0.0", port))
        self.port = self.sock.getsockname()[1]

    def collect(self, quiet=1.0):
        """Everything received until the line has been quiet for ``quiet`` seconds."""
        got = []
        self.sock.settimeout(quiet)
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                return got
            got.append((data, addr[0]))

    def close(self):
        self.sock.close()


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
    mom_overrides["kiosk"].update(
        import_dirs=[os.path.dirname(str(salt_factories.root_dir))], vnc_token_dir=vnc_token_dir
    )
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
        handle.write(
            f"#!{sys.executable}\nimport json, sys\nwith open({zabbix_log!r}, 'a') as log:\n"
            "    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        )
    os.chmod(zabbix_sender, 0o755)
    mom_overrides["file_roots"] = {"base": [os.path.join(REPO_ROOT, "srv", "salt")]}
    mom_overrides["reactor"] = [{"kiosk/alert/power/*": ["salt://reactor/power_alert.sls"]}]
    mom_overrides["kiosk"]["alerts"] = {
        "mail": {"to": "ops@hospital.example", "minion": "central"},
        "zabbix_sender": {
            "server": "127.0.0.1",
            "host": "kiosk-fleet",
            "key": "kiosk.power.alert",
            "command": zabbix_sender,
        },
    }
    api_port = ports.get_unused_localhost_port()
    eauth_file = os.path.join(str(salt_factories.root_dir), "eauth-users")
    with open(eauth_file, "w", encoding="utf-8") as handle:
        handle.write(
            "kiosk-ops:ops-secret\nviewer:viewer-secret\njobs-ops:jobs-secret\n"
            "console-ops:console-secret\nwatcher:watch-secret\n"
        )
    # The console's noVNC button points here (nothing listens: the tests read the address).
    mom_overrides["kiosk"]["novnc_url"] = "http://127.0.0.1:6080/vnc.html"
    mom_overrides.update(
        # salt-api serves the fleet console as the formula's central role configures it.
        rest_cherrypy=dict(console.rest_cherrypy_settings(), host="127.0.0.1", port=api_port, disable_ssl=True),
        netapi_enable_clients=["runner"],
        external_auth={
            "file": {
                "^filename": eauth_file,
                "kiosk-ops": [{"@runner": ["kiosk_power.*"]}],
                "viewer": [{"@runner": ["jobs.list_jobs"]}],
                # May run unit-split jobs, but publish only test.ping / test.echo to kiosks.
                "jobs-ops": [{"@runner": ["kiosk_jobs.*"]}, {"kiosk-*": ["test.ping", "test.echo"]}],
                # The console's operator and a watcher who may look (and wake) but not shut down.
                "console-ops": [
                    {"@runner": CONSOLE_READ + ["kiosk_power.*", "kiosk_jobs.run", "kiosk_vnc.link"]},
                    {"kiosk-*": ["test.ping"]},
                ],
                "watcher": [{"@runner": CONSOLE_READ + ["kiosk_power.targets", "kiosk_power.wake"]}],
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
            overrides=dict(
                topology.minion("127.0.0.1", mom_ret),
                kiosk={"db": mysql_url, "campuses": campus_config(), "role": "central"},
            ),
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
                            "shutdown_command": [
                                sys.executable,
                                FAKE_POWER,
                                power_log,
                                "{action}",
                                "{delay}",
                                "{message}",
                            ],
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


DOCS = os.path.join(REPO_ROOT, "docs")
#: Console users (file eauth): the operator, and a watcher without the shutdown right.
OPS = ("console-ops", "console-secret")
WATCHER = ("watcher", "watch-secret")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, driven by Playwright (never Playwright's own browser download)."""
    from playwright.sync_api import sync_playwright  # pylint: disable=import-outside-toplevel

    assert os.path.exists(CHROMIUM), "Debian's chromium is needed (scripts/test.sh installs it)"
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, salt_api):
    """A 1366x768 page on salt-api's origin; a script error on any page fails the test."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=salt_api)
    page = context.new_page()
    page.set_default_timeout(60000)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: print(f"browser console: {msg.type}: {msg.text}"))
    yield page
    try:  # shown with a failing test's output
        print("page text at the end:", page.inner_text("body", timeout=2000)[-3000:])
    except Exception as exc:  # pylint: disable=broad-except
        print("page text unavailable:", exc)
    context.close()
    assert not errors, errors  # no script error on any page


def sign_in(page, user, password):
    """Sign in to the console with the file eauth backend."""
    page.goto("/console")
    page.fill("#username", user)
    page.fill("#password", password)
    page.select_option("#eauth", "file")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#logout")


def shot(page, name, full_page=False):
    """Save the page as docs/console-<name>.png."""
    os.makedirs(DOCS, exist_ok=True)
    # caret="initial": Playwright would otherwise inject an inline style, which the console's CSP refuses.
    page.screenshot(path=os.path.join(DOCS, f"console-{name}.png"), full_page=full_page, caret="initial")
