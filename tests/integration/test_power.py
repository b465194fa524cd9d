"""
Power control through the real tree: master of masters -> syndic -> relay
minion for Wake-on-LAN (packets captured by a UDP listener), and -> kiosk
minion for shutdown.
"""

import json
import os
import time

import pytest

from salt_kiosk.node import wol
from tests.conftest import KIOSK_NET
from tests.integration.conftest import Capture

pytestmark = pytest.mark.fleet


@pytest.fixture
def capture():
    cap = Capture()
    yield cap
    cap.close()


def count(packets, mac, source):
    return sum(1 for data, addr in packets if addr == source and wol.is_magic_packet(data, mac))


def test_wake_goes_out_from_every_relay_of_the_campus(fleet, fleet_inventory, capture):
    ret = fleet.salt_run_cli().run("kiosk_power.wake", "campus:east", f"port={capture.port}")
    assert ret.returncode == 0, ret
    packets = capture.collect()
    for minion in ("kiosk-e1", "kiosk-e2"):
        mac = KIOSK_NET[minion][1]
        assert count(packets, mac, fleet.relay_address["relay-e1"]) == 3
        assert count(packets, mac, fleet.relay_address["relay-e2"]) == 3
        entry = ret.data["kiosks"][minion]
        assert entry["ok"] is True
        assert sorted(entry["acked"]) == ["relay-e1", "relay-e2"]
        assert entry["silent"] == []
    # Every packet is a well-formed magic packet of an east kiosk; nothing from west relays.
    assert len(packets) == 12
    assert all(p[:6] == b"\xff" * 6 and len(p) == 102 for p, _a in packets)
    assert {a for _p, a in packets} == {fleet.relay_address["relay-e1"], fleet.relay_address["relay-e2"]}

    events = fleet.salt_run_cli().run("kiosk_power.events", "limit=1")
    assert events.data[0]["id"] == ret.data["event"]
    assert events.data[0]["action"] == "wake" and events.data[0]["target"] == "campus:east"
    assert events.data[0]["user"] == "root"


def test_wake_with_one_relay_stopped_names_the_silent_relay(fleet, fleet_inventory, capture):
    relay = fleet.relay_minions["relay-w2"]
    relay.terminate()
    try:
        started = time.monotonic()
        ret = fleet.salt_run_cli().run("kiosk_power.wake", "campus:west", f"port={capture.port}", "timeout=5")
        elapsed = time.monotonic() - started
        assert ret.returncode == 0, ret
        packets = capture.collect()
        for minion in ("kiosk-w1", "kiosk-w2"):
            entry = ret.data["kiosks"][minion]
            got = (entry["ok"], entry["acked"], entry["silent"], entry["failed"])
            assert got == (True, ["relay-w1"], ["relay-w2"], {})
            assert count(packets, KIOSK_NET[minion][1], fleet.relay_address["relay-w1"]) == 3
        assert {a for _p, a in packets} == {fleet.relay_address["relay-w1"]}
        assert ret.data["campuses"]["west"]["relays_silent"] == ["relay-w2"]
        assert elapsed < 30
    finally:
        relay.start()
    assert fleet.salt_cli().run("test.ping", minion_tgt="relay-w2").data is True


def test_bad_wake_input_sends_nothing(fleet, fleet_inventory, capture):
    run = fleet.salt_run_cli()
    before = len(run.run("kiosk_power.events", "limit=1000").data)
    for args, message in (
        (["site:east"], "is not a kiosk target"),
        (["campus:north"], "matches no kiosk"),
        (["*", "repeat=0"], "repeat 0 is out of range"),
        (["*", "port=70000"], "is not a TCP port"),
    ):
        ret = run.run("kiosk_power.wake", *args, f"port={capture.port}" if "port=" not in args[-1] else "timeout=5")
        # salt-run prints the refusal and exits 1 (it printed Salt's usage text and exited 0 before).
        assert ret.returncode == 1 and message in ret.data["error"] and "Usage" not in ret.stdout, ret
    assert capture.collect(quiet=0.5) == []
    assert len(run.run("kiosk_power.events", "limit=1000").data) == before


def test_shutdown_test_mode_through_the_tree(fleet, fleet_inventory):
    ret = fleet.salt_run_cli().run("kiosk_power.shutdown", "campus:west", "test=True", "delay=120")
    assert ret.returncode == 0, ret
    assert ret.data["test"] is True and ret.data["event"] is None
    for minion in ("kiosk-w1", "kiosk-w2"):
        entry = ret.data["kiosks"][minion]
        assert entry["ok"] is True, entry
        assert entry["command"][-3:] == ["poweroff", "120", ""]
        assert not os.path.exists(fleet.power_log[minion])


def test_shutdown_runs_the_kiosks_power_command(fleet, fleet_inventory):
    ret = fleet.salt_run_cli().run("kiosk_power.shutdown", "id:kiosk-e2", "delay=0", 'message="Closing for the night"')
    assert ret.returncode == 0, ret
    assert ret.data["kiosks"]["kiosk-e2"]["ok"] is True
    with open(fleet.power_log["kiosk-e2"], encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert lines[-1]["action"] == "poweroff" and lines[-1]["delay"] == 0
    assert lines[-1]["message"] == "Closing for the night"
    event = fleet.salt_run_cli().run("kiosk_power.events", "kiosk=kiosk-e2", "limit=1").data[0]
    assert event["id"] == ret.data["event"] and event["action"] == "shutdown"
    assert event["kiosks"]["kiosk-e2"]["acked"] == ["kiosk-e2"]


def test_kiosk_module_wake_refuses_a_list_with_a_bad_mac(fleet, capture):
    ret = fleet.salt_cli().run(
        "kiosk.wake",
        '["02:00:00:00:0e:01", "02:00:00:00:0e"]',
        "broadcast=127.255.255.255",
        f"port={capture.port}",
        minion_tgt="relay-e1",
    )
    assert "macs[1]: '02:00:00:00:0e' is not a MAC address" in str(ret.data)
    assert capture.collect(quiet=0.5) == []
