"""Asset grains and the inventory refresh with its change history."""

import datetime

import pytest

from salt_kiosk import assets, inventory
from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import grain as node_grain

CSV = """code,minion_id,campus,groups,ip,mac,vnc_port
E01,kiosk-e1,east,,10.1.0.11,02:00:00:00:0e:01,5900
E02,kiosk-e2,east,,10.1.0.12,02:00:00:00:0e:02,5900
"""


@pytest.fixture
def inv(kstore, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    return kstore


def grain(code, ip, mac, **extra):
    return dict({"role": "kiosk", "code": code, "hostname": code, "ip": ip, "mac": mac, "cpu_count": 4}, **extra)


def test_grain_collects_without_raising():
    facts = node_grain.collect({"id": "kiosk-x", "kiosk": {"code": "X01", "campus": "east"}})
    assert facts["role"] == "kiosk" and facts["code"] == "X01" and facts["campus"] == "east"
    assert facts["cpu_count"] >= 1 and facts["memory_mb"] > 0 and "interfaces" in facts
    relay = node_grain.collect(
        {
            "id": "relay-x",
            "kiosk": {"wol_source": "10.0.0.1"},
            "beacons": {"kiosk_env": [{"driver": "simulated"}, {"dht_pin": 4}]},
        }
    )
    assert relay["role"] == "relay" and relay["sensors"] == {"driver": "simulated", "dht_pin": 4}


def test_changed_ip_writes_one_history_row(inv):
    first = assets.apply_grains(
        inv,
        {
            "kiosk-e1": grain("E01", "10.1.0.11", "02:00:00:00:0e:01"),
            "kiosk-e2": grain("E02", "10.1.0.12", "02:00:00:00:0e:02"),
        },
    )
    assert sorted(first["new"]) == ["kiosk-e1", "kiosk-e2"] and first["changed"] == {}
    second = assets.apply_grains(
        inv,
        {
            "kiosk-e1": grain("E01", "10.1.0.99", "02:00:00:00:0e:01"),
            "kiosk-e2": grain("E02", "10.1.0.12", "02:00:00:00:0e:02"),
        },
    )
    assert second["changed"] == {"kiosk-e1": {"ip": {"old": "10.1.0.11", "new": "10.1.0.99"}}}
    rows = assets.history(inv, minion="kiosk-e1")
    assert [(r["field"], r["old"], r["new"]) for r in rows] == [("ip", "10.1.0.11", "10.1.0.99")]
    assert assets.history(inv, code="E01") == rows
    assert [k["ip"] for k in inventory.list_kiosks(inv, "id:kiosk-e1")] == ["10.1.0.99"]
    third = assets.apply_grains(inv, {"kiosk-e1": grain("E01", "10.1.0.99", "02:00:00:00:0e:01")})
    assert third["changed"] == {} and len(assets.history(inv, minion="kiosk-e1")) == 1


def test_identity_change_is_reported_not_duplicated(inv):
    assets.apply_grains(inv, {"kiosk-e1": grain("E01", "10.1.0.11", "02:00:00:00:0e:01")})
    moved = assets.apply_grains(inv, {"kiosk-e1": grain("E77", "10.1.0.11", "02:00:00:00:0e:01")})
    assert moved["identity_changed"] == {"kiosk-e1": {"inventory_code": "E01", "reported": "E77"}}
    assert [k["code"] for k in inventory.list_kiosks(inv, "*")] == ["E01", "E02"]
    stranger = assets.apply_grains(inv, {"kiosk-new": grain("E02", "10.1.0.50", "02:00:00:00:0e:50")})
    assert "belongs to 'kiosk-e2'" in stranger["conflicts"]["kiosk-new"]
    assert len(inventory.list_kiosks(inv, "*")) == 2


def test_malformed_mac_is_named_and_not_stored(inv):
    report = assets.apply_grains(inv, {"kiosk-e1": grain("E01", "10.1.0.11", "zz:zz")})
    assert "kiosk:mac grain" in report["conflicts"]["kiosk-e1"] and "zz:zz" in report["conflicts"]["kiosk-e1"]
    assert inventory.list_kiosks(inv, "id:kiosk-e1")[0]["mac"] == "02:00:00:00:0e:01"


def test_not_seen_and_bad_days(inv):
    old = datetime.datetime(2026, 1, 1)
    assets.apply_grains(inv, {"kiosk-e1": grain("E01", "10.1.0.11", "02:00:00:00:0e:01")}, now=old)
    report = assets.apply_grains(inv, {}, not_seen_days=7)
    assert report["not_seen"]["kiosk-e1"] == "2026-01-01T00:00:00Z" and "kiosk-e2" in report["not_seen"]
    with pytest.raises(KioskInputError, match="not_seen_days 'soon'"):
        assets.apply_grains(inv, {}, not_seen_days="soon")
    with pytest.raises(KioskInputError, match="kiosk 'X99' is unknown"):
        assets.history(inv, code="X99")


def test_asset_row_of_one_node_with_its_checked_facts(inv):
    assert assets.asset(inv, "kiosk-e1") is None  # no refresh has seen it yet
    assets.apply_grains(inv, {"kiosk-e1": grain("E01", "10.1.0.11", "not-a-mac", model="<b>KX-9</b>", serial="SN 42")})
    row = assets.asset(inv, "kiosk-e1")
    assert (row["code"], row["ip"], row["mac"]) == ("E01", "10.1.0.11", None)  # the bad MAC is stored nowhere
    assert row["facts"]["model"] == "<b>KX-9</b>" and row["facts"]["serial"] == "SN 42"  # data, shown as text
    assert "mac" not in row["facts"] and row["last_seen"] and row["first_seen"]
    with pytest.raises(KioskInputError, match="is not a valid minion id"):
        assets.asset(inv, "kiosk e1;")
