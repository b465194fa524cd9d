"""
Security issue 13, finding 6: data from kiosks reaching the inventory and the
websockify token files.

A kiosk's owner controls its grains (``grains:`` in the minion config overrides
the ``kiosk`` grain module). A forged ``ip`` such as ``"x\\nauto_accept:
True\\n#"`` used to be stored by ``kiosk_inventory.refresh`` and written
unescaped into token files. Now every stored grain field is checked: a bad one
is a conflict naming the minion and the field (value escaped and capped) and is
stored nowhere; token lines are checked again when they are written.

Here the library, on SQLite (the same tests run on MariaDB from
tests/functional/security/test_inventory_grains.py); a forged grain on a real
kiosk minion of the fleet is in tests/integration/security/test_inventory_grains.py.
"""

import json
import re

import pytest
import sqlalchemy as sa

from salt_kiosk import assets, inventory, vnc
from salt_kiosk.db import schema, store

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


# --- the library on a real database ----------------------------------------------


@pytest.fixture
def kstore(opts):
    """A store on the tier's ``opts`` (SQLite in tests/unit, MariaDB in tests/functional) with :data:`CAMPUSES`."""
    return store.open_store(dict(opts, kiosk=dict(opts["kiosk"], campuses=CAMPUSES)))


@pytest.fixture
def inv(kstore, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    return kstore


def good_grain(**extra):
    return dict(
        {
            "role": "kiosk",
            "code": "E01",
            "campus": "east",
            "hostname": "kiosk-e1",
            "ip": "10.1.0.11",
            "mac": "02:00:00:00:0e:01",
            "release": "1.0.0",
            "serial": "SN1",
            "cpu_count": 4,
            "memory_mb": 2048,
            "disk_gb": 31.2,
        },
        **extra,
    )


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
        "10.1.0.11",
        "02:00:00:00:0e:01",
        "east",
        "kiosk-e1",
        "1.0.0",
        "kiosk",
    )
    facts = json.loads(row.facts)
    for field in BAD:
        assert facts.get(field) != BAD[field], (field, facts)
    assert facts["serial"] == "SN1" and facts["cpu_count"] == 4 and "vendor" not in facts
    assert _rows(inv, schema.asset_history, "kiosk-e1") == []
    kiosk = inventory.list_kiosks(inv, "id:kiosk-e1")[0]
    assert (kiosk["ip"], kiosk["mac"]) == ("10.1.0.11", "02:00:00:00:0e:01")


def test_bad_code_is_a_conflict_and_not_stored(inv):
    report = assets.apply_grains(
        inv, {"kiosk-new": good_grain(code="E0\nauto_accept: True", ip="10.1.0.50", mac="02:00:00:00:0e:50")}
    )
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
    grain = good_grain(
        interfaces={f"eth{i}": {"mac": "02:00:00:00:00:01", "ipv4": ["10.0.0.1"] * 50} for i in range(200)}
    )
    report = assets.apply_grains(inv, {"kiosk-e1": grain})
    assert "only its checked fields are kept" in report["conflicts"]["kiosk-e1"]
    row = _rows(inv, schema.assets, "kiosk-e1")[0]
    assert len(row.facts) <= assets.FACTS_MAX
    facts = json.loads(row.facts)
    assert facts["facts_truncated"] is True and facts["ip"] == "10.1.0.11" and "interfaces" not in facts
    # A grain under the cap is kept whole, as JSON data.
    assets.apply_grains(
        inv,
        {
            "kiosk-e2": good_grain(
                code="E02", ip="10.1.0.12", mac="02:00:00:00:0e:02", interfaces={"eth0": {"ipv4": ["10.1.0.12"]}}
            )
        },
    )
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
