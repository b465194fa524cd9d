import pytest

from salt_kiosk import inventory
from salt_kiosk.errors import KioskInputError

HEADER = "code,minion_id,campus,groups,ip,mac,vnc_port\n"
GOOD = (
    HEADER
    + "E01,kiosk-e1,east,opd;pay,10.1.0.11,00-11-22-33-44-01,5900\n"
    + "E02,kiosk-e2,east,opd,10.1.0.12,0011.2233.4402,\n"
    + "W01,kiosk-w1,west,,10.2.0.11,001122334403,5901\n"
)


def write(tmp_path, text, name="inv.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_import_and_list(kstore, tmp_path):
    summary = inventory.import_csv(kstore, write(tmp_path, GOOD))
    assert summary["added"] == ["E01", "E02", "W01"]
    kiosks = inventory.list_kiosks(kstore)
    assert [k["code"] for k in kiosks] == ["E01", "E02", "W01"]
    assert kiosks[0] == {
        "code": "E01",
        "minion_id": "kiosk-e1",
        "campus": "east",
        "groups": ["opd", "pay"],
        "ip": "10.1.0.11",
        "mac": "00:11:22:33:44:01",
        "vnc_port": 5900,
    }
    assert kiosks[1]["vnc_port"] is None
    again = inventory.import_csv(kstore, write(tmp_path, GOOD))
    assert again["unchanged"] == ["E01", "E02", "W01"] and not again["added"]


def test_bad_row_refuses_whole_file_naming_line_and_field(kstore, tmp_path):
    text = GOOD + "W02,kiosk-w2,west,,10.2.0.300,00:11:22:33:44:05,5902\n"
    with pytest.raises(KioskInputError) as exc:
        inventory.import_csv(kstore, write(tmp_path, text))
    assert "line 5, field 'ip': '10.2.0.300' is not an IPv4 address" in str(exc.value)
    assert "nothing imported" in str(exc.value)
    assert inventory.list_kiosks(kstore) == []


def test_skip_bad_imports_good_rows_only(kstore, tmp_path):
    text = GOOD + "W02,kiosk-w2,mars,,10.2.0.12,00:11:22:33:44:05,5902\n"
    summary = inventory.import_csv(kstore, write(tmp_path, text), skip_bad=True)
    assert summary["added"] == ["E01", "E02", "W01"]
    assert summary["rejected"] == [
        {
            "line": 5,
            "field": "campus",
            "value": "mars",
            "error": "unknown campus 'mars' (configured campuses: east, west; add it under kiosk:campuses in the master config)",
        }
    ]


def test_duplicates_and_missing_fields(kstore, tmp_path):
    text = HEADER + "E01,kiosk-e1,east,,,,\nE01,kiosk-e1,east,,,,\n,,east,,,,\n"
    with pytest.raises(KioskInputError) as exc:
        inventory.import_csv(kstore, write(tmp_path, text))
    msg = str(exc.value)
    assert "line 3, field 'code': 'E01' is already used on line 2" in msg
    assert "line 3, field 'minion_id': 'kiosk-e1' is already used on line 2" in msg
    assert "line 4, field 'code': code is required" in msg
    assert "line 4, field 'minion_id': minion_id is required" in msg


def test_bad_header_and_short_row(kstore, tmp_path):
    with pytest.raises(KioskInputError, match=r"line 1: bad CSV header.*missing \['vnc_port'\]"):
        inventory.import_csv(kstore, write(tmp_path, "code,minion_id,campus,groups,ip,mac\n"))
    with pytest.raises(KioskInputError, match="line 2, field '\\*': has 3 fields"):
        inventory.import_csv(kstore, write(tmp_path, HEADER + "E01,kiosk-e1,east\n"))
    with pytest.raises(KioskInputError, match="does not exist"):
        inventory.import_csv(kstore, str(tmp_path / "missing.csv"))


def test_minion_id_owned_by_other_kiosk_is_refused(kstore, tmp_path):
    inventory.import_csv(kstore, write(tmp_path, GOOD))
    with pytest.raises(
        KioskInputError, match="line 2, field 'minion_id': minion id 'kiosk-e1' already belongs to kiosk 'E01'"
    ):
        inventory.import_csv(kstore, write(tmp_path, HEADER + "E09,kiosk-e1,east,,,,\n", "b.csv"))
    # With replace, E01 leaves the inventory and E09 takes over its minion.
    summary = inventory.import_csv(kstore, write(tmp_path, HEADER + "E09,kiosk-e1,east,,,,\n", "c.csv"), replace=True)
    assert summary == {
        "added": ["E09"],
        "updated": [],
        "unchanged": [],
        "removed": ["E01", "E02", "W01"],
        "rejected": [],
    }


def test_update_changes_fields(kstore, tmp_path):
    inventory.import_csv(kstore, write(tmp_path, GOOD))
    changed = GOOD.replace("10.1.0.12", "10.1.0.99")
    summary = inventory.import_csv(kstore, write(tmp_path, changed, "b.csv"))
    assert summary["updated"] == ["E02"]
    assert inventory.list_kiosks(kstore, "id:kiosk-e2")[0]["ip"] == "10.1.0.99"


def test_targets(kstore, tmp_path):
    inventory.import_csv(kstore, write(tmp_path, GOOD))
    ids = lambda t: [k["minion_id"] for k in inventory.list_kiosks(kstore, t)]  # noqa: E731
    assert ids("*") == ["kiosk-e1", "kiosk-e2", "kiosk-w1"]
    assert ids("campus:west") == ["kiosk-w1"]
    assert ids("group:opd") == ["kiosk-e1", "kiosk-e2"]
    assert ids("group:pay") == ["kiosk-e1"]
    assert ids("id:kiosk-e*") == ["kiosk-e1", "kiosk-e2"]
    assert ids("campus:north") == []
    for bad in ("east", "site:east", "campus:", "group:a b", None):
        with pytest.raises(KioskInputError, match="accepted|not a valid"):
            inventory.list_kiosks(kstore, bad)
    assert inventory.by_campus(inventory.list_kiosks(kstore)).keys() == {"east", "west"}


def test_codes_differing_only_in_case_are_two_kiosks(kstore, tmp_path):
    text = HEADER + "E01,kiosk-e1,east,,,,\ne01,kiosk-E1,east,,,,\n"
    assert inventory.import_csv(kstore, write(tmp_path, text))["added"] == ["E01", "e01"]
    assert len(inventory.list_kiosks(kstore)) == 2


def test_large_import_adds_and_updates_in_batches(kstore, tmp_path):
    rows = [
        f"K{n:05d},kiosk-{n:05d},{'east' if n % 2 else 'west'},g{n % 7},10.9.{n // 250}.{n % 250 + 1},,\n"
        for n in range(2500)
    ]
    first = inventory.import_csv(kstore, write(tmp_path, HEADER + "".join(rows)))
    assert len(first["added"]) == 2500
    # Every third kiosk moves to another group; the rest are unchanged.
    changed = [row.replace(f",g{n % 7},", ",moved,") if n % 3 == 0 else row for n, row in enumerate(rows)]
    second = inventory.import_csv(kstore, write(tmp_path, HEADER + "".join(changed), "second.csv"))
    assert len(second["updated"]) == 834 and len(second["unchanged"]) == 1666 and not second["added"]
    kiosks = {k["code"]: k for k in inventory.list_kiosks(kstore)}
    assert len(kiosks) == 2500
    assert kiosks["K00003"]["groups"] == ["moved"] and kiosks["K00004"]["groups"] == ["g4"]
    assert kiosks["K02497"] == {
        "code": "K02497",
        "minion_id": "kiosk-02497",
        "campus": "east",
        "groups": ["g5"],
        "ip": "10.9.9.248",
        "mac": None,
        "vnc_port": None,
    }
