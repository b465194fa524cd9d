"""
Security issue 13, finding 6: the library tests of
tests/unit/security/test_inventory_grains.py on a throwaway MariaDB database
(their ``kstore`` is built on ``opts``, see tests/functional/conftest.py).
"""

from tests.unit.security.test_inventory_grains import *  # noqa: F403
