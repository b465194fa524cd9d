"""The tests of tests/unit/test_inventory.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_inventory import *  # noqa: F403
