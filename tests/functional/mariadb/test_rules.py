"""The tests of tests/unit/test_rules.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_rules import *  # noqa: F403
