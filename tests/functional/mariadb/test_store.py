"""The tests of tests/unit/test_store.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_store import *  # noqa: F403
