"""
The engine's ``peers`` check on MariaDB: two masters of masters on one
database see each other; a standby on another database (a typo in
``kiosk:db``) is refused at start, naming ``kiosk_scheduler:peers`` and
``kiosk:db``.
"""

import pytest

from salt_kiosk.db import store
from salt_kiosk.errors import KioskInputError
from salt_kiosk.power import peers
from tests.conftest import throwaway_database
from tests.unit.conftest import CAMPUSES

pytestmark = pytest.mark.mysql


def open_store(url, tmp_path, name):
    return store.open_store(
        {"cachedir": str(tmp_path / name), "order_masters": True, "kiosk": {"db": url, "campuses": CAMPUSES}}
    )


def test_masters_on_one_database_see_each_other_and_another_database_is_refused(tmp_path):
    with throwaway_database("kiosk_pa") as shared, throwaway_database("kiosk_pb") as other:
        try:
            leader = open_store(shared, tmp_path, "a")
            standby = open_store(shared, tmp_path, "b")
            # The leader starts first: no peer yet, so after the wait it is refused...
            with pytest.raises(KioskInputError, match=r"none of them has ever run the engine on the database"):
                peers.check(leader, "10.0.0.10", ["10.0.0.11"], wait=0)
            # ...but it registered itself, so the standby starting now finds it, and then the leader finds the standby.
            assert peers.check(standby, "10.0.0.11", ["10.0.0.10"], wait=0) == ["10.0.0.10"]
            assert peers.check(leader, "10.0.0.10", ["10.0.0.11"], wait=0) == ["10.0.0.11"]
            # A standby whose kiosk:db names another database is refused, naming both settings.
            wrong = open_store(other, tmp_path, "c")
            with pytest.raises(KioskInputError) as caught:
                peers.check(wrong, "10.0.0.11", ["10.0.0.10"], wait=0)
            message = str(caught.value)
            assert "kiosk_scheduler:peers ['10.0.0.10']" in message and "(kiosk:db)" in message
            assert "kiosk_pb" in message  # the database it found, named (its password hidden)
        finally:
            store.dispose_all()
