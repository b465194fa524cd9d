"""
Verification sweeps end to end: the kiosks' addresses live in a network
namespace the test creates; a shutdown makes one kiosk really go away (its
address leaves the namespace and its minion stops) while the other ignores it.
The engine in the master of masters verifies the manual power event with the
relays' real nmap sweeps and Salt presence, and alerts on the ignoring kiosk only.
"""

import json
import os
import time

import pytest

from tests.conftest import fleet_inventory_csv
from tests.netns import namespace

pytestmark = pytest.mark.fleet

IPS = {"kiosk-e1": "198.18.1.11", "kiosk-e2": "198.18.1.12"}


@pytest.fixture
def kiosks_in_namespace(fleet, fleet_inventory, tmp_path):
    csv = fleet_inventory_csv().replace("127.0.1.11", IPS["kiosk-e1"]).replace("127.0.1.12", IPS["kiosk-e2"])
    path = tmp_path / "netns-inventory.csv"
    path.write_text(csv)
    original = tmp_path / "original.csv"
    original.write_text(fleet_inventory_csv())
    run = fleet.salt_run_cli()
    with namespace() as ns:
        ns.add_many(IPS.values())
        assert run.run("kiosk_inventory.import_csv", str(path)).returncode == 0
        try:
            yield ns
        finally:
            for minion in IPS:
                effect = fleet.power_log[minion] + ".effect.json"
                if os.path.exists(effect):
                    os.remove(effect)
                if not fleet.kiosks[minion].is_running():
                    fleet.kiosks[minion].start()
            run.run("kiosk_inventory.import_csv", str(original))


def test_check_sees_network_and_presence(fleet, kiosks_in_namespace):
    ret = fleet.salt_run_cli().run("kiosk_sweep.check", "campus:east", "expect=on")
    assert ret.returncode == 0, ret
    for minion in IPS:
        entry = ret.data[minion]
        assert (entry["observed"], entry["network"], entry["salt"], entry["ok"]) == ("on", "up", "up", True)
        assert entry["relays"] == ["relay-e1", "relay-e2"]
    kiosks_in_namespace.remove(IPS["kiosk-e2"])
    ret = fleet.salt_run_cli().run("kiosk_sweep.check", "id:kiosk-e2", "expect=off")
    entry = ret.data["kiosk-e2"]
    assert (entry["network"], entry["salt"], entry["observed"], entry["ok"]) == ("down", "up", "on", False)
    assert "198.18.1.12 does not answer on the network" in entry["reason"] and "its minion answers" in entry["reason"]
    kiosks_in_namespace.add(IPS["kiosk-e2"])


def test_kiosk_ignoring_shutdown_is_the_only_one_alerted(fleet, kiosks_in_namespace, event_listener):
    # kiosk-e1 obeys: its address leaves the namespace and its minion stops.
    effect = {
        "run": kiosks_in_namespace.remove_command(IPS["kiosk-e1"]),
        "kill": fleet.kiosks["kiosk-e1"].pid,
        "after": 2,
    }
    with open(fleet.power_log["kiosk-e1"] + ".effect.json", "w", encoding="utf-8") as handle:
        json.dump(effect, handle)
    started = time.time()
    ret = fleet.salt_run_cli().run("kiosk_power.shutdown", "campus:east", "delay=0")
    assert ret.returncode == 0, ret
    assert ret.data["ok"] == 2
    event_id = ret.data["event"]

    summary = event_listener.wait_for_events([(fleet.mom.id, "kiosk/power/verified")], after_time=started, timeout=120)
    verified = [e for e in summary.matches if e.data["event"] == event_id]
    assert verified, summary
    assert verified[0].data["kiosks_wrong"] == ["kiosk-e2"]
    assert (verified[0].data["ok"], verified[0].data["wrong"]) == (1, 1)
    alerts = event_listener.get_events([(fleet.mom.id, "kiosk/alert/power/*")], after_time=started)
    mine = [e for e in alerts if e.data["event"] == event_id]
    assert [e.tag for e in mine] == ["kiosk/alert/power/kiosk-e2"]
    alert = mine[0].data
    assert (alert["expected"], alert["observed"], alert["action"]) == ("off", "on", "shutdown")
    assert "198.18.1.12 answers on the network" in alert["reason"]

    stored = fleet.salt_run_cli().run("kiosk_sweep.results", str(event_id)).data
    assert sorted(stored) == ["1", "2", "3"] or sorted(stored) == [1, 2, 3]
    final = stored.get("3") or stored.get(3)
    assert final["kiosk-e1"]["ok"] is True and final["kiosk-e1"]["observed"] == "off"
    assert final["kiosk-e2"]["ok"] is False
