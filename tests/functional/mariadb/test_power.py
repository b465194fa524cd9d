"""The tests of tests/unit/test_power.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_power import *  # noqa: F403
