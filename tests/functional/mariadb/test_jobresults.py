"""
Job results (the kiosk_mysql returner's library) on a throwaway MariaDB
database: the tests of tests/unit/test_jobresults.py that use the ``opts``
store run here again (imported below, see tests/functional/conftest.py), and
the spool tests, which need a network database to lose.
"""

import logging
import os
import socket

import pytest

from salt_kiosk.db import schema
from salt_kiosk.jobs import cache, writer
from tests.unit.test_jobresults import *  # noqa: F403
from tests.unit.test_jobresults import count, owner_creates_schema, ret


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mysql_master(mysql_db, tmp_path):
    """Like ``master`` but always on MariaDB: the spool tests need a network database to lose."""
    owner_creates_schema(mysql_db)

    def make(master_id, db=None, spool="spool", spool_max=1000):
        conf = {
            "db": db or mysql_db,
            "master_id": master_id,
            "spool_dir": str(tmp_path / spool),
            "spool_max": spool_max,
        }
        return {"cachedir": str(tmp_path), "kiosk_mysql": conf}

    yield make
    writer.JobResults.dispose_all()


def test_unreachable_database_spools_and_replays_in_order_without_duplicates(mysql_master, caplog):
    master = mysql_master
    down = master("relay-e1", db=f"mysql+pymysql://root@127.0.0.1:{closed_port()}/nowhere?connect_timeout=2")
    offline = writer.JobResults.get(down)
    with caplog.at_level(logging.WARNING):
        for index in range(5):
            assert (
                offline.write("return", offline.return_row(ret("20261125000000000003", f"kiosk-{index}", index)))
                == "spooled"
            )
        offline.write("events", offline.event_rows([{"tag": "kiosk/x", "data": {}}]))
    assert len(offline.spool) == 6 and "database unreachable" in caplog.text
    online = writer.JobResults.get(master("relay-e1"))  # same spool directory, reachable database
    online.write("return", online.return_row(ret("20261125000000000003", "kiosk-5", 5)))
    assert len(online.spool) == 0
    opts = master("relay-e1")
    assert sorted(cache.get_jid(opts, "20261125000000000003")) == [f"kiosk-{i}" for i in range(6)]
    assert count(opts, schema.events) == 1
    assert online.flush() == 0  # nothing left, nothing twice


def test_full_spool_says_so(mysql_master, caplog):
    master = mysql_master
    down = writer.JobResults.get(
        master("relay-e1", db=f"mysql+pymysql://root@127.0.0.1:{closed_port()}/nowhere?connect_timeout=2", spool_max=2)
    )
    with caplog.at_level(logging.ERROR):
        states = [down.write("return", down.return_row(ret("1", f"k{i}", i))) for i in range(3)]
    assert states == ["spooled", "spooled", "dropped"]
    assert "spool" in caplog.text and "is FULL (2 items" in caplog.text


def test_item_the_database_refuses_is_kept_aside_and_blocks_nothing(mysql_master, tmp_path):
    opts = mysql_master("relay-e1")
    results = writer.JobResults.get(opts)
    bad = ret("20261125000000000020", "kiosk-1", 1, fun="f" * 300)  # longer than the fun column
    assert results.write("return", results.return_row(bad)) == "refused"
    kept = [n for n in os.listdir(tmp_path / "spool") if n.endswith(".bad")]
    assert len(kept) == 1 and len(results.spool) == 0
    assert results.write("return", results.return_row(ret("20261125000000000020", "kiosk-2", 2))) == "written"
    # The same item already spooled (written while the database was down) does not block the replay either.
    results.spool.put("return", results.return_row(bad))
    results.spool.put("return", results.return_row(ret("20261125000000000020", "kiosk-3", 3)))
    assert results.write("return", results.return_row(ret("20261125000000000020", "kiosk-4", 4))) == "written"
    assert sorted(cache.get_jid(opts, "20261125000000000020")) == ["kiosk-2", "kiosk-3", "kiosk-4"]
    assert len([n for n in os.listdir(tmp_path / "spool") if n.endswith(".bad")]) == 2


def test_full_spool_drains_as_soon_as_the_database_is_back(mysql_master):
    down = writer.JobResults.get(
        mysql_master(
            "relay-e1", db=f"mysql+pymysql://root@127.0.0.1:{closed_port()}/nowhere?connect_timeout=2", spool_max=2
        )
    )
    assert [down.write("return", down.return_row(ret("21", f"k{i}", i))) for i in range(2)] == ["spooled"] * 2
    up = writer.JobResults.get(mysql_master("relay-e1", spool_max=2))
    assert up.write("return", up.return_row(ret("21", "k2", 2))) == "written"
    assert sorted(cache.get_jid(mysql_master("relay-e1"), "21")) == ["k0", "k1", "k2"]
