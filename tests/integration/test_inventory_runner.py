"""
kiosk_inventory runners through the real master of masters and MariaDB.
"""

import pytest

from tests.conftest import fleet_inventory_csv

pytestmark = pytest.mark.fleet


def test_import_list_and_targets(fleet, fleet_inventory):
    assert [k["minion_id"] for k in fleet_inventory] == ["kiosk-e1", "kiosk-e2", "kiosk-w1", "kiosk-w2"]
    run = fleet.salt_run_cli()
    listed = run.run("kiosk_inventory.list", "campus:west")
    assert [k["minion_id"] for k in listed.data] == ["kiosk-w1", "kiosk-w2"]
    assert listed.data[0]["mac"] == "02:00:00:00:0f:01"

    targets = run.run("kiosk_power.targets", "group:pay")
    assert targets.data == {
        "east": {"relays": ["relay-e1", "relay-e2"], "broadcast": "127.255.255.255", "kiosks": ["kiosk-e1"]},
        "west": {"relays": ["relay-w1", "relay-w2"], "broadcast": "127.255.255.255", "kiosks": ["kiosk-w1"]},
    }
    campuses = run.run("kiosk_inventory.campuses")
    assert campuses.data["west"]["timezone"] == "Europe/Berlin"


def test_bad_csv_row_is_refused_with_its_line_number(fleet, fleet_inventory, tmp_path):
    run = fleet.salt_run_cli()
    path = tmp_path / "bad.csv"
    path.write_text(
        fleet_inventory_csv()
        + "E03,kiosk-e3,east,,127.0.1.13,02:00:00:00:0e:03,5903\n"
        + "E04,kiosk-e4,east,,127.0.1.14,02:00:00:0e:04,5904\n"
    )
    ret = run.run("kiosk_inventory.import_csv", str(path))
    assert "line 7, field 'mac': '02:00:00:0e:04' is not a MAC address" in ret.stdout
    assert "nothing imported" in ret.stdout
    assert run.run("kiosk_inventory.list").data == fleet_inventory


def test_fleet_overview_through_salt_run(fleet, fleet_inventory):
    run = fleet.salt_run_cli()
    ret = run.run("kiosk_inventory.fleet", "campus:east", "search=e0")
    assert ret.returncode == 0, ret.stdout
    (east,) = ret.data["campuses"]
    assert east["name"] == "east" and east["relays"] == ["relay-e1", "relay-e2"]
    assert [k["code"] for k in east["kiosks"]] == ["E01", "E02"]
    assert all(k["power"] in (None, "on", "off", "unknown") for k in east["kiosks"])
    assert ret.data["counts"]["kiosks"] == 2
    bad = run.run("kiosk_inventory.fleet", "campus:north")
    assert bad.returncode == 1
    assert "campus 'north' is unknown (known: east, west)" in bad.stdout
