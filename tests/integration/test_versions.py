"""
``kiosk_inventory.versions`` through the real master of masters: every node
below both syndics answers ``kiosk.version`` with the loader modules' and the
library's version, and in the test fleet (one checkout) they agree.
"""

import pytest

import salt_kiosk

pytestmark = pytest.mark.fleet


def test_every_node_reports_modules_and_library_without_skew(fleet):
    ret = fleet.salt_run_cli().run("kiosk_inventory.versions", "timeout=30")
    assert ret.returncode == 0, ret
    report = ret.data
    assert sorted(report["nodes"]) == fleet.minion_ids, report
    assert set(fleet.kiosks) <= set(report["nodes"])
    for minion, answer in report["nodes"].items():
        assert answer == {"modules": salt_kiosk.__version__, "library": salt_kiosk.__version__}, minion
    assert report["skew"] == [] and report["unknown"] == [] and report["failed"] == {}


def test_target_narrows_the_nodes_asked(fleet):
    ret = fleet.salt_run_cli().run("kiosk_inventory.versions", "kiosk-e*", "timeout=30")
    assert ret.returncode == 0, ret
    assert sorted(ret.data["nodes"]) == ["kiosk-e1", "kiosk-e2"] and ret.data["skew"] == []
