"""
Both delivery paths of the loader modules: a non-editable pip install (entry
point) and a checkout in file_roots synced with saltutil.sync_all. Here the
checkout served by a relay master's file_roots, synced to a fleet kiosk; the
pip install is in tests/functional/test_packaging.py.
"""

import glob
import os

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.fleet
def test_file_roots_checkout_syncs_modules_to_kiosk(fleet):
    # A state.apply (the formula test) syncs dynamic modules too; start from none.
    extmods = fleet.kiosks["kiosk-w1"].config["extension_modules"]
    for path in glob.glob(os.path.join(extmods, "*", "kiosk*.py")):
        os.unlink(path)
    ret = fleet.salt_cli().run("saltutil.sync_all", minion_tgt="kiosk-w1")
    assert ret.returncode == 0, ret
    synced = ret.data
    assert "modules.kiosk" in synced["modules"], synced
    synced_file = os.path.join(extmods, "modules", "kiosk.py")
    with (
        open(synced_file, encoding="utf-8") as got,
        open(os.path.join(REPO_ROOT, "_modules", "kiosk.py"), encoding="utf-8") as want,
    ):
        assert got.read() == want.read()
    doc = fleet.salt_cli().run("sys.doc", "kiosk.md5", minion_tgt="kiosk-w1")
    assert "CLI Example" in doc.data["kiosk.md5"]
