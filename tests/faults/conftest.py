"""
The fault tier's fleet: a campus of two relays whose kiosks list both relays as
masters (multi-master), below a master of masters, writing job results into a
private MariaDB server. Tests stop and start its daemons for real, so it is
started once per module, never shared with tests/integration.
"""

import contextlib
import os
import shutil

import pytest
from pytestshellutils.utils import ports

from salt_kiosk import inventory, topology
from salt_kiosk.db import store
from tests.mariadb_server import PrivateMariaDB

RELAYS = {"relay-e1": "127.0.3.2", "relay-e2": "127.0.3.3"}
KIOSKS = {
    # minion id: (code, mac, ip)
    "kiosk-e1": ("E01", "02:00:00:00:3e:01", "127.0.3.11"),
    "kiosk-e2": ("E02", "02:00:00:00:3e:02", "127.0.3.12"),
}
CAMPUS = {"east": {"timezone": "Asia/Shanghai", "broadcast": "127.255.255.255", "relays": list(RELAYS)}}


class Campus:
    """The running fault fleet: the master of masters, the relays' daemons, the kiosks."""

    def __init__(self, mom, mariadb):
        self.mom = mom
        self.mariadb = mariadb
        self.relays = {}  # relay id -> (master, syndic, minion) factories
        self.kiosks = {}
        self.file_root = None

    def relay_daemons(self, relay):
        master, syndic, minion = self.relays[relay]
        return [master, syndic, minion]

    def stop_relay(self, relay):
        for daemon in reversed(self.relay_daemons(relay)):
            daemon.terminate()

    def start_relay(self, relay):
        for daemon in self.relay_daemons(relay):
            daemon.start()

    def sql(self, statement):
        return self.mariadb.sql(statement.replace("{db}", "kiosk_faults"))


@pytest.fixture(scope="module")
def campus(salt_factories, tmp_path_factory):
    mariadb = PrivateMariaDB(str(tmp_path_factory.mktemp("faults-mariadb")))
    mariadb.install()
    mariadb.start()
    mariadb.sql("CREATE DATABASE kiosk_faults")
    db_url = mariadb.url.replace("/kiosk_outage?", "/kiosk_faults?")
    mom_pub, mom_ret = ports.get_unused_localhost_port(), ports.get_unused_localhost_port()
    # Every relay of the campus listens on the same ret_port (its own address):
    # a kiosk's master list is plain addresses with one master_port.
    relay_ret = ports.get_unused_localhost_port()
    wol_port = ports.get_unused_localhost_port()
    mom_overrides = dict(
        topology.mom("127.0.0.1", mom_pub, mom_ret, master_id="faults-mom", auto_accept=True),
        kiosk={"db": db_url, "campuses": CAMPUS, "wol_port": wol_port},
    )
    mom = salt_factories.salt_master_daemon("faults-mom", overrides=mom_overrides)
    fleet = Campus(mom, mariadb)
    file_root = str(tmp_path_factory.mktemp("faults-file-root"))
    os.makedirs(os.path.join(file_root, "faults"))
    with open(os.path.join(file_root, "faults", "hello.txt"), "w", encoding="utf-8") as handle:
        handle.write("delivered through whichever relay is up\n")
    fleet.file_root = file_root
    with contextlib.ExitStack() as stack:
        stack.callback(mariadb.stop)
        stack.enter_context(mom.started())
        shared_key = None
        for relay, address in RELAYS.items():
            syndic = mom.salt_syndic_daemon(
                relay,
                overrides=topology.syndic("127.0.0.1", mom_ret),
                master_overrides=dict(
                    topology.syndic_master(address, relay_ret, mom_pub, auto_accept=True),
                    file_roots={"base": [file_root]},
                    master_job_cache="kiosk_mysql",
                    kiosk_mysql={"db": db_url, "master_id": relay},
                ),
                minion_overrides=dict(topology.minion(address, relay_ret, mom_pub), kiosk={"wol_source": address}),
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
            syndic.minion.start()
            stack.callback(syndic.minion.terminate)
            fleet.relays[relay] = (syndic.master, syndic, syndic.minion)
        first_master = fleet.relays["relay-e1"][0]
        for kiosk_id in KIOSKS:
            kiosk = first_master.salt_minion_daemon(
                kiosk_id,
                overrides=dict(
                    topology.minion(list(RELAYS.values()), relay_ret, mom_pub),
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
