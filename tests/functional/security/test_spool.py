"""
Security issue 13, finding 8: the kiosk_mysql returner's spool. Items the
database refuses (kept as ``.json.bad``) count against ``spool_max`` and
``kiosk_mysql:spool_max_bytes``. The returner is loaded by Salt's own loader
and writes into the local MariaDB (the refusals are real: a ``fun`` longer
than its column). The rest of the finding is in tests/unit/security/test_spool.py,
whose ``returner`` fixture and helpers this uses.
"""

import logging

from salt_kiosk.jobs import writer
from tests.unit.security import test_spool as spool_tests
from tests.unit.security.test_spool import ITEM, big_return, closed_port, spool_usage

returner = spool_tests.returner  # the fixture: the Salt-loaded kiosk_mysql.returner


def test_refused_items_count_against_spool_max(returner, mysql_db, tmp_path, caplog):
    write = returner(mysql_db, spool_max=10)
    with caplog.at_level(logging.ERROR):
        for index in range(30):
            write(big_return(index, fun="f" * 300))  # longer than the fun column: the database refuses it
    items, size = spool_usage(tmp_path)
    assert items == 10, (items, size)
    assert size <= 10 * (ITEM + 1000)
    assert "not kept (spool full)" in caplog.text
    # The refused items fill the spool: an item spooled while the database is down is dropped too.
    writer.JobResults.dispose_all()
    down = returner(f"mysql+pymysql://root@127.0.0.1:{closed_port()}/nowhere?connect_timeout=2", spool_max=10)
    down(big_return(99))
    assert spool_usage(tmp_path)[0] == 10
    assert "is FULL (10 items of kiosk_mysql:spool_max 10" in caplog.text


def test_refused_items_count_against_the_byte_bound(returner, mysql_db, tmp_path):
    write = returner(mysql_db, spool_max_bytes=500_000)
    for index in range(20):
        write(big_return(index, fun="f" * 300))
    items, size = spool_usage(tmp_path)
    assert size <= 500_000 and items == 4, (items, size)
