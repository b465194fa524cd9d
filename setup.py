"""
The one packaging detail pyproject.toml cannot express: where the loader modules come from.

All metadata (name, version, dependencies, extras, the ``salt.loader`` entry
point) lives in pyproject.toml. What remains here is the package list.

The Salt loader directories (``_modules``, ``_runners`` ...) sit at the top of the
checkout so that a checkout listed in ``file_roots`` works with
``saltutil.sync_all``. In the wheel they travel inside the library as
``salt_kiosk._modules`` ... (``package_dir`` maps each one to its top-level
directory) and :func:`salt_kiosk.loader.loader_dirs` announces them to Salt.

``[tool.setuptools]`` in pyproject.toml takes either a ``packages.find``
discovery or a fixed ``packages`` list, not both. The library's own packages
(``salt_kiosk``, ``salt_kiosk.node``, ``salt_kiosk.db`` ...) must be discovered so
that a new subpackage ships without touching the packaging, while the mapped
loader packages cannot be discovered (they are not below ``salt_kiosk/``). So the
list is computed here: discovered library packages plus the mapped loader
directories.
"""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
LOADER_DIRS = ("_modules", "_states", "_runners", "_returners", "_grains", "_beacons", "_engines")


def _has_python(dirname):
    path = os.path.join(HERE, dirname)
    return os.path.isdir(path) and any(name.endswith(".py") for name in os.listdir(path))


SHIPPED = [d for d in LOADER_DIRS if _has_python(d)]

setup(
    packages=find_packages(where=HERE, include=["salt_kiosk", "salt_kiosk.*"]) + [f"salt_kiosk.{d}" for d in SHIPPED],
    package_dir={f"salt_kiosk.{d}": d for d in SHIPPED},
)
