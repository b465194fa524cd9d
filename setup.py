"""
Packaging for salt-kiosk.

The Salt loader directories (``_modules``, ``_runners`` ...) sit at the top of the
checkout so that a checkout listed in ``file_roots`` works with
``saltutil.sync_all``. For pip installs they are shipped inside the
``salt_kiosk`` package (``salt_kiosk/_modules`` ...) and announced to Salt by the
``salt.loader`` entry point :func:`salt_kiosk.loader.loader_dirs`.
"""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
LOADER_DIRS = ("_modules", "_states", "_runners", "_returners", "_grains", "_beacons", "_engines")


def _has_python(dirname):
    path = os.path.join(HERE, dirname)
    return os.path.isdir(path) and any(name.endswith(".py") for name in os.listdir(path))


SHIPPED = [d for d in LOADER_DIRS if _has_python(d)]

PI_MARKER = 'sys_platform == "linux" and (platform_machine == "armv6l" or platform_machine == "armv7l" or platform_machine == "aarch64")'

with open(os.path.join(HERE, "README.md"), encoding="utf-8") as handle:
    LONG_DESCRIPTION = handle.read()

setup(
    name="salt-kiosk",
    version="0.1.0",
    description="Salt extension that runs fleets of self-service kiosks across campuses",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["salt_kiosk", "salt_kiosk.*"]) + [f"salt_kiosk.{d}" for d in SHIPPED],
    package_dir={f"salt_kiosk.{d}": d for d in SHIPPED},
    install_requires=[
        "salt>=3008.4,<3009",
        "SQLAlchemy>=2.0,<2.2",
        "PyMySQL>=1.1",
        "PyYAML>=6.0",
        "wakeonlan>=3.0",
        "APScheduler>=3.10,<4",
        "python-nmap>=0.7",
    ],
    extras_require={
        "pi": [
            f"Adafruit_DHT; {PI_MARKER}",
            f"RPi.GPIO; {PI_MARKER}",
            f"adafruit-circuitpython-dht; {PI_MARKER}",
        ],
        "bench": ["saltext-mysql"],
        "test": [
            "websockify",
            "pytest>=8,<10",
            "pytest-salt-factories>=1.0,<1.1",
            "CherryPy",
            "requests",
        ],
    },
    entry_points={"salt.loader": ["salt-kiosk = salt_kiosk.loader:loader_dirs"]},
    zip_safe=False,
    classifiers=[
        "Framework :: Salt",
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
    ],
)
