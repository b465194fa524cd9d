"""
Security issue 13, finding 6, on the real fleet: a kiosk minion whose config
forges its ``kiosk`` grain (``grains:`` overrides the grain module), collected
by ``kiosk_inventory.refresh``, reaches neither the inventory, its history nor
the websockify token files. The library tests are in
tests/unit/security/test_inventory_grains.py.
"""

import json
import os
import time

import pytest
import sqlalchemy as sa

from salt_kiosk import topology
from salt_kiosk.db import schema
from tests.conftest import fleet_inventory_csv
from tests.unit.security.test_inventory_grains import FORGED_IP, TOKEN_LINE, token_file_lines


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
        "role": "kiosk",
        "code": "E09",
        "campus": "east",
        "hostname": "kiosk-forged",
        "ip": FORGED_IP,
        "mac": "02:00:00:00:0e:99\nauto_accept: True",
        "release": "1.0.0\r\n#",
        "serial": "SN\x1b[2J-9",
    }
    forged = syndic_master.salt_minion_daemon(
        minion_id,
        overrides=dict(
            topology.minion(fleet.relay_address[relay], syndic_master.config["ret_port"]),
            grains={"kiosk": forged_grain},
        ),
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
