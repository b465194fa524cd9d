"""
kiosk_inventory runners through the real master of masters and MariaDB.
"""

import pytest

pytestmark = pytest.mark.fleet

CSV = (
    "code,minion_id,campus,groups,ip,mac,vnc_port\n"
    "E01,kiosk-e1,east,opd;pay,127.0.1.11,02:00:00:00:0e:01,5901\n"
    "E02,kiosk-e2,east,opd,127.0.1.12,02-00-00-00-0e-02,5902\n"
    "W01,kiosk-w1,west,pay,127.0.2.11,0200.0000.0f01,5911\n"
    "W02,kiosk-w2,west,,127.0.2.12,020000000f02,5912\n"
)


def test_import_list_and_targets(fleet, tmp_path):
    path = tmp_path / "inventory.csv"
    path.write_text(CSV)
    run = fleet.salt_run_cli()
    ret = run.run("kiosk_inventory.import_csv", str(path))
    assert ret.returncode == 0, ret
    assert sorted(ret.data["added"] + ret.data["unchanged"]) == ["E01", "E02", "W01", "W02"]

    listed = run.run("kiosk_inventory.list", "campus:west")
    assert [k["minion_id"] for k in listed.data] == ["kiosk-w1", "kiosk-w2"]
    assert listed.data[0]["mac"] == "02:00:00:00:0f:01"

    targets = run.run("kiosk_power.targets", "group:pay")
    assert targets.data == {
        "east": {"relays": ["relay-e1"], "broadcast": "127.255.255.255", "kiosks": ["kiosk-e1"]},
        "west": {"relays": ["relay-w1"], "broadcast": "127.255.255.255", "kiosks": ["kiosk-w1"]},
    }


def test_bad_csv_row_is_refused_with_its_line_number(fleet, tmp_path):
    run = fleet.salt_run_cli()
    before = run.run("kiosk_inventory.list").data
    path = tmp_path / "bad.csv"
    path.write_text(CSV.replace("E03", "E03") + "E03,kiosk-e3,east,,127.0.1.13,02:00:00:00:0e:03,5903\n" + "E04,kiosk-e4,east,,127.0.1.14,02:00:00:0e:04,5904\n")
    ret = run.run("kiosk_inventory.import_csv", str(path))
    assert "line 7, field 'mac': '02:00:00:0e:04' is not a MAC address" in ret.stdout
    assert "nothing imported" in ret.stdout
    assert run.run("kiosk_inventory.list").data == before
