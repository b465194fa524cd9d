"""The tests of tests/unit/test_engine_outage.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_engine_outage import *  # noqa: F403
