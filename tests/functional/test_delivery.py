"""
The verified delivery library, the part that needs root: a replaced file keeps
its owner (the test chowns it to another user first). The rest is in
tests/unit/test_delivery.py, whose ``src`` fixture this uses.
"""

import os

from salt_kiosk.node import delivery
from tests.unit import test_delivery as delivery_tests
from tests.unit.test_delivery import md5_of

src = delivery_tests.src  # the fixture: a source file of 1 MB


def test_replaced_file_keeps_its_owner(tmp_path, src):
    dest = tmp_path / "app.conf"
    dest.write_bytes(b"old")
    os.chown(dest, 65534, 65534)
    delivery.deliver(str(src), str(dest), md5_of(src.read_bytes()))
    assert (dest.stat().st_uid, dest.stat().st_gid) == (65534, 65534)
    delivery.restore(str(dest))
    assert dest.read_bytes() == b"old" and not list(tmp_path.glob("*.kiosk-swap"))
