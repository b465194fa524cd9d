"""The tests of tests/unit/test_overview.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_overview import *  # noqa: F403
