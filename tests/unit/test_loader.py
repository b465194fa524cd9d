import os

from salt_kiosk import loader

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_loader_dirs_point_at_existing_directories():
    dirs = loader.loader_dirs()
    assert dirs["modules"] == [os.path.join(REPO, "_modules")] or dirs["modules"][0].endswith("salt_kiosk/_modules")
    assert {"modules", "runners"} <= set(dirs)
    for paths in dirs.values():
        assert all(os.path.isdir(p) for p in paths)
    assert os.path.isfile(os.path.join(dirs["modules"][0], "kiosk.py"))
    assert os.path.isfile(os.path.join(dirs["runners"][0], "kiosk_inventory.py"))
