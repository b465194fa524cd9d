"""Fixtures shared by the security tests that need no fleet."""

import pytest

from salt_kiosk.db import store

#: One campus with one relay: enough for the library-level security tests.
CAMPUSES = {"east": {"timezone": "Asia/Shanghai", "broadcast": "10.1.255.255", "relays": ["relay-e1"]}}


@pytest.fixture
def kstore(tmp_path):
    """An embedded SQLite store with :data:`CAMPUSES` (a module may define its own ``kstore``)."""
    yield store.open_store({"cachedir": str(tmp_path / "cache"), "kiosk": {"campuses": CAMPUSES}})
    store.dispose_all()
