"""The tests of tests/unit/test_engine_leader.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_engine_leader import *  # noqa: F403
