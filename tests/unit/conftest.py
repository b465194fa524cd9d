import pytest

from salt_kiosk.db import store
from tests.conftest import throwaway_database

CAMPUSES = {
    "east": {"timezone": "Asia/Shanghai", "broadcast": "10.1.255.255", "relays": ["relay-e1", "relay-e2"]},
    "west": {"timezone": "Europe/Berlin", "broadcast": "10.2.255.255", "relays": ["relay-w1"]},
}


@pytest.fixture(params=["sqlite", "mysql"])
def opts(request, tmp_path):
    """Master options pointing at an embedded SQLite file or a throwaway MariaDB database."""
    if request.param == "sqlite":
        yield {"cachedir": str(tmp_path), "kiosk": {"campuses": CAMPUSES}}
        store.dispose_all()
    else:
        with throwaway_database("kiosk_u") as url:
            # The master of masters' options: it owns (creates and upgrades) the schema.
            yield {"cachedir": str(tmp_path), "order_masters": True, "kiosk": {"db": url, "campuses": CAMPUSES}}


@pytest.fixture
def kstore(opts):
    return store.open_store(opts)
