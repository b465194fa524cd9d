"""
A standby master of masters must use the leader's database: the engine's
``peers`` check refuses the embedded SQLite file and bad ``peers`` values,
naming the setting (the server-database half runs on MariaDB in
tests/functional/test_engine_peers_mariadb.py).
"""

import pytest

from salt_kiosk.errors import KioskInputError
from salt_kiosk.power import peers


def test_no_peers_is_no_check(kstore):
    assert peers.check(kstore, "10.0.0.10", None) == []
    assert peers.check(kstore, "10.0.0.10", []) == []


def test_the_embedded_sqlite_file_cannot_be_shared_with_peers(kstore):
    with pytest.raises(KioskInputError, match=r"kiosk:db is the embedded SQLite file .*kiosk_scheduler:peers lists"):
        peers.check(kstore, "10.0.0.10", ["10.0.0.11"], wait=0)


@pytest.mark.parametrize(
    "value, message",
    [
        ({"a": 1}, r"kiosk_scheduler:peers \{'a': 1\}: expected a list"),
        (["10.0.0.11", ""], r"kiosk_scheduler:peers has '': expected master ids"),
        (["10.0.0.11", 7], r"kiosk_scheduler:peers has 7: expected master ids"),
        (["bad\nid"], r"kiosk_scheduler:peers has 'bad\\nid'"),
        (["10.0.0.10"], r"names this master itself \('10.0.0.10'\)"),
        ([f"10.0.0.{n}" for n in range(17)], r"at most 16"),
    ],
)
def test_bad_peers_are_refused_naming_the_setting(kstore, value, message):
    with pytest.raises(KioskInputError, match=message):
        peers.check(kstore, "10.0.0.10", value, wait=0)


def test_one_peer_may_be_given_as_a_string():
    assert peers.check_list("10.0.0.11", "10.0.0.10") == ["10.0.0.11"]
