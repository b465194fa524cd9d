"""
The ``salt.loader`` entry point of salt-kiosk.

Salt calls :func:`loader_dirs` and adds the returned directories to its module
search paths, so an installed salt-kiosk (wheel or editable) needs no
``saltutil.sync_all``. In a wheel the loader directories travel inside the
``salt_kiosk`` package (``salt_kiosk/_modules`` ...); in a source checkout they sit
next to it (``_modules`` ...), which is also what ``file_roots`` serves.
"""

import os

#: Salt loader type -> directory name, in the layout fixed by DESIGN.md.
LOADER_DIRS = {
    "modules": "_modules",
    "states": "_states",
    "runners": "_runners",
    "returners": "_returners",
    "grains": "_grains",
    "beacons": "_beacons",
    "engines": "_engines",
}

_HERE = os.path.dirname(os.path.abspath(__file__))


def _locate(dirname):
    for base in (_HERE, os.path.dirname(_HERE)):
        candidate = os.path.join(base, dirname)
        if os.path.isdir(candidate):
            return candidate
    return None


def loader_dirs():
    """
    Return ``{loader type: [directory]}`` for every loader directory present.
    """
    found = {}
    for kind, dirname in LOADER_DIRS.items():
        path = _locate(dirname)
        if path is not None:
            found[kind] = [path]
    return found
