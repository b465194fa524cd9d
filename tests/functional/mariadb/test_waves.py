"""The tests of tests/unit/test_waves.py that use a store, on a throwaway MariaDB database."""

from tests.unit.test_waves import *  # noqa: F403
