"""
The MariaDB runs of the unit store tests. Each module here imports a
tests/unit module's tests and fixtures (``from tests.unit.test_x import *``);
tests/functional/conftest.py collects only those that use ``opts``, and gives
them its ``opts`` (a throwaway database on the local MariaDB server). A test is
written once, in tests/unit, and runs there on SQLite.
"""
