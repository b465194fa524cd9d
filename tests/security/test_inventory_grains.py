"""
Security issue 13, finding 6: data from kiosks reaching the inventory and the
websockify token files.

A kiosk's owner controls its grains (``grains:`` in the minion config overrides
the ``kiosk`` grain module). A forged ``ip`` such as ``"x\\nauto_accept:
True\\n#"`` used to be stored by ``kiosk_inventory.refresh`` and written
unescaped into token files. Now every stored grain field is checked: a bad one
is a conflict naming the minion and the field (value escaped and capped) and is
stored nowhere; token lines are checked again when they are written.
"""

import json
import os
import re
import time

import pytest
import sqlalchemy as sa

from salt_kiosk.db import schema
from salt_kiosk import assets, inventory, topology, vnc
from salt_kiosk.db import store
from tests.conftest import fleet_inventory_csv, throwaway_database

FORGED_IP = "x\nauto_accept: True\n#"
TOKEN_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*: \d{1,3}(\.\d{1,3}){3}:\d{1,5}$")

CAMPUSES = {"east": {"timezone": "Asia/Shanghai", "broadcast": "10.1.255.255", "relays": ["relay-e1"]}}
CSV = """code,minion_id,campus,groups,ip,mac,vnc_port
E01,kiosk-e1,east,,10.1.0.11,02:00:00:00:0e:01,5900
E02,kiosk-e2,east,,10.1.0.12,02:00:00:00:0e:02,5901
"""


def token_file_lines(path):
    with open(path, encoding="utf-8") as handle:
        return [line for line in handle.read().splitlines() if not line.startswith("#")]


# --- on the real fleet ---------------------------------------------------------


def _asset_row(fleet, minion):
    engine = sa.create_engine(fleet.mom.config["kiosk"]["db"])
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(schema.assets).where(schema.assets.c.minion_id == minion)).first()
    finally:
        engine.dispose()


def _forget_asset(fleet, minion):
    engine = sa.create_engine(fleet.mom.config["kiosk"]["db"])
    try:
        with engine.begin() as conn:
            conn.execute(schema.assets.delete().where(schema.assets.c.minion_id == minion))
            conn.execute(schema.asset_history.delete().where(schema.asset_history.c.minion_id == minion))
    finally:
        engine.dispose()


def _import(fleet, tmp_path, text):
    path = tmp_path / "inventory.csv"
    path.write_text(text)
    ret = fleet.salt_run_cli().run("kiosk_inventory.import_csv", str(path), "replace=True")
    assert ret.returncode == 0, ret


@pytest.mark.fleet
def test_forged_kiosk_grain_reaches_neither_inventory_history_nor_token_files(fleet, fleet_inventory, tmp_path):
    relay = "relay-e1"
    syndic_master = fleet.syndics[relay].master
    minion_id = "kiosk-forged"
    forged_grain = {
        "role": "kiosk", "code": "E09", "campus": "east", "hostname": "kiosk-forged",
        "ip": FORGED_IP, "mac": "02:00:00:00:0e:99\nauto_accept: True", "release": "1.0.0\r\n#",
        "serial": "SN\x1b[2J-9",
    }
    forged = syndic_master.salt_minion_daemon(
        minion_id,
        overrides=dict(topology.minion(fleet.relay_address[relay], syndic_master.config["ret_port"]),
                       grains={"kiosk": forged_grain}),
    )
    # The forged kiosk is a known inventory kiosk: its IP would be "corrected".
    _import(fleet, tmp_path, fleet_inventory_csv() + "E09,kiosk-forged,east,,127.0.1.19,02:00:00:00:0e:09,5909\n")
    token_dir = fleet.mom.config["kiosk"]["vnc_token_dir"]
    try:
        with forged.started():
            cli = fleet.salt_cli()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                seen = cli.run("grains.item", "kiosk", minion_tgt=minion_id)
                if seen.returncode == 0 and isinstance(seen.data, dict) and "kiosk" in seen.data:
                    break
                time.sleep(2)
            # The static config grain really overrides the grain module on the kiosk.
            assert seen.data["kiosk"]["ip"] == FORGED_IP, seen

            refresh = fleet.salt_run_cli().run("kiosk_inventory.refresh")
            assert refresh.returncode == 0, refresh
            report = refresh.data
            assert minion_id in report["answered"], report

        # Nothing of the forged grain is stored: the inventory keeps its IP and MAC ...
        listed = fleet.salt_run_cli().run("kiosk_inventory.list", "id:kiosk-forged").data
        assert [(k["ip"], k["mac"]) for k in listed] == [("127.0.1.19", "02:00:00:00:0e:09")], listed
        everything = json.dumps(fleet.salt_run_cli().run("kiosk_inventory.list").data)
        assert "auto_accept" not in everything
        # ... the token file holds only clean lines ...
        tokens = fleet.salt_run_cli().run("kiosk_vnc.tokens")
        assert tokens.returncode == 0, tokens
        assert tokens.data["tokens"]["east"]["E09"] == "127.0.1.19:5909", tokens
        lines = token_file_lines(os.path.join(token_dir, "east.conf"))
        assert "E09: 127.0.1.19:5909" in lines
        assert all(TOKEN_LINE.match(line) for line in lines), lines
        # ... and neither the history nor the asset row holds a bad value.
        history = fleet.salt_run_cli().run("kiosk_inventory.history", minion_id).data
        assert "auto_accept" not in json.dumps(history) and "\\u001b" not in json.dumps(history), history
        row = _asset_row(fleet, minion_id)
        assert row is not None and row.ip is None and row.mac is None and row.release is None, row
        assert row.code == "E09" and row.campus == "east"
        assert "auto_accept" not in row.facts and "\\u001b" not in row.facts

        # The refresh names each bad field, its value escaped (no raw control characters) and capped.
        conflict = report["conflicts"][minion_id]
        for field in ("kiosk:ip grain", "kiosk:mac grain", "kiosk:release grain", "kiosk:serial grain"):
            assert field in conflict, conflict
        assert repr(FORGED_IP) in conflict
        assert not any(ch in conflict for ch in "\n\r\x1b"), conflict
        # The rest of the fleet is collected as before.
        assert set(fleet.kiosks) <= set(report["answered"])
        assert not set(fleet.kiosks) & set(report["conflicts"]), report["conflicts"]
    finally:
        syndic_master.salt_key_cli().run("-d", minion_id, "-y")
        _forget_asset(fleet, minion_id)
        _import(fleet, tmp_path, fleet_inventory_csv())


# --- the library on a real database ----------------------------------------------


@pytest.fixture(params=["sqlite", "mysql"])
def kstore(request, tmp_path):
    if request.param == "sqlite":
        yield store.open_store({"cachedir": str(tmp_path), "kiosk": {"campuses": CAMPUSES}})
        store.dispose_all()
    else:
        with throwaway_database("kiosk_sec") as url:
            # The master of masters' options: it owns (creates) the schema.
            yield store.open_store({"cachedir": str(tmp_path), "order_masters": True,
                                    "kiosk": {"db": url, "campuses": CAMPUSES}})


@pytest.fixture
def inv(kstore, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    return kstore


def good_grain(**extra):
    return dict({"role": "kiosk", "code": "E01", "campus": "east", "hostname": "kiosk-e1", "ip": "10.1.0.11",
                 "mac": "02:00:00:00:0e:01", "release": "1.0.0", "serial": "SN1", "cpu_count": 4,
                 "memory_mb": 2048, "disk_gb": 31.2}, **extra)


BAD = {
    "ip": FORGED_IP,
    "mac": "02:00:00:00:0e:01\n#",
    "campus": "east\nauto_accept: True",
    "hostname": "kiosk-e1\r\nX-Injected: 1",
    "release": "1.0.0; rm -rf /",
    "role": "kiosk\n",
    "serial": "SN\x1b]0;pwned\x07",
    "vendor": "ACME\u202e",
    "model": "M" * 300,
    "cpu": ["not", "text"],
    "cpu_count": "many",
    "memory_mb": -1,
    "disk_gb": True,
}


def _rows(kstore, table, minion):
    with kstore.connect() as conn:
        return conn.execute(sa.select(table).where(table.c.minion_id == minion)).all()


def test_every_stored_field_is_checked_and_a_bad_one_stored_nowhere(inv):
    assets.apply_grains(inv, {"kiosk-e1": good_grain()})
    report = assets.apply_grains(inv, {"kiosk-e1": good_grain(**BAD)})
    conflict = report["conflicts"]["kiosk-e1"]
    for field in BAD:
        assert f"kiosk:{field} grain" in conflict, (field, conflict)
    assert not any(ch in conflict for ch in "\n\r\x1b\x07\u202e"), conflict
    assert "kiosk-e1" not in report["changed"]  # nothing bad became a change
    row = _rows(inv, schema.assets, "kiosk-e1")[0]
    # The last good values stay where a bad one was reported.
    assert (row.ip, row.mac, row.campus, row.hostname, row.release, row.role) == (
        "10.1.0.11", "02:00:00:00:0e:01", "east", "kiosk-e1", "1.0.0", "kiosk")
    facts = json.loads(row.facts)
    for field in BAD:
        assert facts.get(field) != BAD[field], (field, facts)
    assert facts["serial"] == "SN1" and facts["cpu_count"] == 4 and "vendor" not in facts
    assert _rows(inv, schema.asset_history, "kiosk-e1") == []
    kiosk = inventory.list_kiosks(inv, "id:kiosk-e1")[0]
    assert (kiosk["ip"], kiosk["mac"]) == ("10.1.0.11", "02:00:00:00:0e:01")


def test_bad_code_is_a_conflict_and_not_stored(inv):
    report = assets.apply_grains(inv, {"kiosk-new": good_grain(code="E0\nauto_accept: True", ip="10.1.0.50",
                                                                mac="02:00:00:00:0e:50")})
    assert "kiosk:code grain" in report["conflicts"]["kiosk-new"]
    row = _rows(inv, schema.assets, "kiosk-new")[0]
    assert row.code is None and row.ip == "10.1.0.50"
    assert "auto_accept" not in row.facts


def test_conflict_shows_the_value_escaped_and_capped(inv):
    huge = "x\n" + "A" * 100_000
    report = assets.apply_grains(inv, {"kiosk-e1": good_grain(ip=huge)})
    conflict = report["conflicts"]["kiosk-e1"]
    assert "kiosk:ip grain" in conflict and "'x\\nAAAA" in conflict and "100002 characters" in conflict
    assert len(conflict) < 400 and "\n" not in conflict


def test_facts_are_capped(inv):
    grain = good_grain(interfaces={f"eth{i}": {"mac": "02:00:00:00:00:01", "ipv4": ["10.0.0.1"] * 50}
                                   for i in range(200)})
    report = assets.apply_grains(inv, {"kiosk-e1": grain})
    assert "only its checked fields are kept" in report["conflicts"]["kiosk-e1"]
    row = _rows(inv, schema.assets, "kiosk-e1")[0]
    assert len(row.facts) <= assets.FACTS_MAX
    facts = json.loads(row.facts)
    assert facts["facts_truncated"] is True and facts["ip"] == "10.1.0.11" and "interfaces" not in facts
    # A grain under the cap is kept whole, as JSON data.
    assets.apply_grains(inv, {"kiosk-e2": good_grain(code="E02", ip="10.1.0.12", mac="02:00:00:00:0e:02",
                                                     interfaces={"eth0": {"ipv4": ["10.1.0.12"]}})})
    assert json.loads(_rows(inv, schema.assets, "kiosk-e2")[0].facts)["interfaces"] == {"eth0": {"ipv4": ["10.1.0.12"]}}


def test_token_lines_are_checked_again_when_written(inv, tmp_path):
    # A row written before the inventory was validated.
    with inv.begin() as conn:
        conn.execute(schema.kiosks.update().where(schema.kiosks.c.code == "E02").values(ip=FORGED_IP))
    out = tmp_path / "tokens"
    out.mkdir()
    ret = vnc.write_tokens(inv, str(out))
    assert ret["tokens"]["east"] == {"E01": "10.1.0.11:5900"}
    reason = ret["skipped"]["E02"]
    assert "ip" in reason and repr(FORGED_IP) in reason and "\n" not in reason
    lines = token_file_lines(out / "east.conf")
    assert lines == ["E01: 10.1.0.11:5900"]
