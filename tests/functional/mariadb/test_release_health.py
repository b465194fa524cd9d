"""The tests of tests/unit/test_release_health.py that use a store, on a throwaway MariaDB database."""

from tests.unit.test_release_health import *  # noqa: F403
