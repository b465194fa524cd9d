"""
Shared fixtures (the MariaDB test databases, salt-factories' root) and the
test tiers: tests/unit, tests/functional, tests/integration. The fleet itself
is started by tests/integration/conftest.py.

See tests/README.md for what each fixture starts and how long it lives.
"""

import contextlib
import os
import pathlib
import uuid

import pymysql
import pytest
import sqlalchemy as sa

from salt_kiosk.db import store

MYSQL_HOST = os.environ.get("KIOSK_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("KIOSK_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("KIOSK_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("KIOSK_TEST_MYSQL_PASSWORD", "")

#: The test fleet: two campuses, two relays (syndic nodes) each, two kiosks each.
#: Kiosks are minions of their campus's first relay.
CAMPUSES = {
    "east": {
        "timezone": "Asia/Shanghai",
        "broadcast": "127.255.255.255",
        "relays": {"relay-e1": "127.0.0.2", "relay-e2": "127.0.0.4"},
        "kiosks": ["kiosk-e1", "kiosk-e2"],
    },
    "west": {
        "timezone": "Europe/Berlin",
        "broadcast": "127.255.255.255",
        "relays": {"relay-w1": "127.0.0.3", "relay-w2": "127.0.0.5"},
        "kiosks": ["kiosk-w1", "kiosk-w2"],
    },
}

#: MAC and IP of each test kiosk in the fleet inventory.
KIOSK_NET = {
    "kiosk-e1": ("E01", "02:00:00:00:0e:01", "127.0.1.11", "opd;pay"),
    "kiosk-e2": ("E02", "02:00:00:00:0e:02", "127.0.1.12", "opd"),
    "kiosk-w1": ("W01", "02:00:00:00:0f:01", "127.0.2.11", "pay"),
    "kiosk-w2": ("W02", "02:00:00:00:0f:02", "127.0.2.12", ""),
}

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mysql_admin(sql):
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD, autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
    finally:
        conn.close()


@contextlib.contextmanager
def throwaway_database(prefix):
    """Create a uniquely named database on the local server; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # The server's default collation on purpose: the schema must not depend on it.
    _mysql_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa.engine.URL.create(
        "mysql+pymysql",
        username=MYSQL_USER,
        password=MYSQL_PASSWORD or None,
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        database=name,
        query={"charset": "utf8mb4"},
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        store.dispose_all()
        _mysql_admin(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def mysql_url():
    """SQLAlchemy URL of a throwaway MariaDB database for the whole session."""
    with throwaway_database("kiosk_test") as url:
        yield url


@pytest.fixture
def mysql_db():
    """A fresh throwaway MariaDB database for one test."""
    with throwaway_database("kiosk_t") as url:
        yield url


def campus_config():
    """The ``kiosk:campuses`` section matching :data:`CAMPUSES`."""
    return {
        name: {"timezone": c["timezone"], "broadcast": c["broadcast"], "relays": list(c["relays"])}
        for name, c in CAMPUSES.items()
    }


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    return {
        "root_dir": str(tmp_path_factory.mktemp("fleet")),
        "start_timeout": 120,
    }


def fleet_inventory_csv():
    """The inventory CSV describing the test fleet's kiosks."""
    lines = ["code,minion_id,campus,groups,ip,mac,vnc_port"]
    for campus, spec in CAMPUSES.items():
        for index, minion in enumerate(spec["kiosks"]):
            code, mac, ip, groups = KIOSK_NET[minion]
            lines.append(f"{code},{minion},{campus},{groups},{ip},{mac},{5900 + index}")
    return "\n".join(lines) + "\n"


TESTS_DIR = pathlib.Path(__file__).resolve().parent

#: The tiers, each a folder of tests/ and a marker (``pytest -m unit``).
TIERS = {
    "unit": "tests/unit: hermetic, SQLite only, no root, no network namespaces, no MariaDB, no Salt daemons",
    "functional": "tests/functional: MariaDB, nmap, network namespaces or single Salt daemons, not the fleet",
    "integration": "tests/integration: the daemon fleet (the fleet fixture of tests/integration/conftest.py)",
    "faults": "tests/faults: daemons and a private MariaDB really stopped (a fleet of its own, tests/faults/conftest.py)",
}

#: Fixtures a tier's tests must not use.
NOT_IN_TIER = {
    "unit": {"mysql_url", "mysql_db", "salt_factories", "fleet", "fleet_inventory", "salt_api"},
    "functional": {"fleet", "fleet_inventory", "salt_api"},
    "faults": {"fleet", "fleet_inventory", "salt_api"},
}


def pytest_configure(config):
    for tier, text in TIERS.items():
        config.addinivalue_line("markers", f"{tier}: {text}")
    config.addinivalue_line("markers", "security: a security finding's test (tests/<tier>/security/)")


def pytest_collection_modifyitems(config, items):
    """Mark each test with its tier (and ``security``); refuse a test that needs more than its tier gives."""
    misplaced = []
    for item in items:
        try:
            parts = pathlib.Path(item.path).resolve().relative_to(TESTS_DIR).parts
        except ValueError:
            continue
        tier = parts[0] if parts[0] in TIERS else None
        if tier is None:
            continue
        item.add_marker(tier)
        if "security" in parts[1:-1]:
            item.add_marker("security")
        needs = NOT_IN_TIER.get(tier, set()) & set(item.fixturenames)
        if tier == "unit":
            needs |= {name for name in ("mysql", "fleet") if item.get_closest_marker(name)}
        if needs:
            misplaced.append(f"{item.nodeid} needs {', '.join(sorted(needs))}")
    if misplaced:
        raise pytest.UsageError("tests in the wrong tier (see tests/README.md):\n  " + "\n  ".join(misplaced))


def pytest_unconfigure(config):
    # Salt's log handlers may flush into streams pytest has already closed at
    # interpreter exit; that is noise, not a failure.
    import logging

    logging.raiseExceptions = False
