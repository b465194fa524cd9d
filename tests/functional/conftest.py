"""
Fixtures of the functional tier: the MariaDB ``opts`` / ``kstore`` for the
MariaDB runs of the unit store tests (tests/functional/mariadb/ and
tests/functional/security/test_inventory_grains.py import them).
"""

import pytest

from salt_kiosk.db import store
from tests.conftest import throwaway_database
from tests.unit.conftest import CAMPUSES


@pytest.fixture(params=[pytest.param("mysql", marks=pytest.mark.mysql)])
def opts(request, tmp_path):
    """Master options pointing at a throwaway database on the local MariaDB server."""
    with throwaway_database("kiosk_u") as url:
        # The master of masters' options: it owns (creates and upgrades) the schema.
        yield {"cachedir": str(tmp_path), "order_masters": True, "kiosk": {"db": url, "campuses": CAMPUSES}}


@pytest.fixture
def kstore(opts):
    return store.open_store(opts)


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """
    A test imported from a tests/unit module is collected here only when it
    uses ``opts``: that is its MariaDB run. Its other tests need no database
    and run in tests/unit alone.
    """
    collected = yield
    if not getattr(obj, "__module__", "").startswith("tests.unit.") or not isinstance(collected, list):
        return collected
    return [item for item in collected if "opts" in getattr(item, "fixturenames", ())]
