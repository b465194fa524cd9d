import pytest

from salt_kiosk.db import store

CAMPUSES = {
    "east": {"timezone": "Asia/Shanghai", "broadcast": "10.1.255.255", "relays": ["relay-e1", "relay-e2"]},
    "west": {"timezone": "Europe/Berlin", "broadcast": "10.2.255.255", "relays": ["relay-w1"]},
}


@pytest.fixture(params=["sqlite"])
def opts(request, tmp_path):
    """
    Master options pointing at an embedded SQLite file. The tests using it run
    again on MariaDB from tests/functional/mariadb/ (``opts`` of
    tests/functional/conftest.py, test id ``[mysql]``).
    """
    yield {"cachedir": str(tmp_path), "kiosk": {"campuses": CAMPUSES}}
    store.dispose_all()


@pytest.fixture
def kstore(opts):
    return store.open_store(opts)
