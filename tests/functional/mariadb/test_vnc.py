"""The tests of tests/unit/test_vnc.py that use the ``opts`` store, on a throwaway MariaDB database."""

from tests.unit.test_vnc import *  # noqa: F403
