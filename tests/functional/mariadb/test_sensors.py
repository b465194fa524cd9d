"""The tests of tests/unit/test_sensors.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_sensors import *  # noqa: F403
