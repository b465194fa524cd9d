"""The tests of tests/unit/test_releases.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_releases import *  # noqa: F403
