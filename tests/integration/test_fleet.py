"""
The test fleet itself: every minion below both syndics answers the master of masters.
"""

import pytest

pytestmark = pytest.mark.fleet


def test_ping_reaches_every_minion_below_both_syndics(fleet):
    ret = fleet.salt_cli().run("test.ping", minion_tgt="*")
    assert ret.returncode == 0, ret
    assert ret.data == dict.fromkeys(fleet.minion_ids, True)
    assert sorted(fleet.relay_minions) == ["relay-e1", "relay-e2", "relay-w1", "relay-w2"]
    assert len(fleet.kiosks) == 4
