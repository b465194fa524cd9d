"""The tests of tests/unit/test_scheduler.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_scheduler import *  # noqa: F403
