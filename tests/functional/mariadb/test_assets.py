"""The tests of tests/unit/test_assets.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_assets import *  # noqa: F403
