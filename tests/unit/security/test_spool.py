"""
Security issue 13, finding 8: the kiosk_mysql returner's spool. Items the
database refuses (kept as ``.json.bad``) did not count against ``spool_max``,
and the bound counted items, not bytes: 300 refused returns of 100 kB filled
30 MB with ``spool_max: 10``. Now the spool is bounded in items and bytes
(``kiosk_mysql:spool_max_bytes``) and refused items count against both.

The returner is loaded by Salt's own loader. Here the bound in bytes with the
database down and the setting's check; the refused items, which need the local
MariaDB (the refusals are real: a ``fun`` longer than its column), are in
tests/functional/security/test_spool.py.
"""

import logging
import os
import socket

import pytest
import salt.config
import salt.loader

from salt_kiosk.errors import KioskInputError
from salt_kiosk.jobs import spool, writer

ITEM = 100_000


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def returner(tmp_path):
    """``make(db, **kiosk_mysql settings)`` -> Salt-loaded ``kiosk_mysql.returner`` writing into tmp_path/spool."""

    def make(db, **settings):
        opts = salt.config.master_config(str(tmp_path / "master"))
        # The master of masters: it owns (creates) the schema of the database it writes to.
        opts.update(
            cachedir=str(tmp_path / "cache"),
            id="sec-master",
            master_id="sec-master",
            order_masters=True,
            kiosk_mysql=dict({"db": db, "spool_dir": str(tmp_path / "spool")}, **settings),
        )
        return salt.loader.returners(opts, {})["kiosk_mysql.returner"]

    yield make
    writer.JobResults.dispose_all()


def big_return(index, fun="test.echo"):
    return {
        "jid": f"2026112500000000{index:04d}",
        "id": f"kiosk-{index}",
        "fun": fun,
        "fun_args": [],
        "return": "x" * ITEM,
        "retcode": 0,
        "success": True,
    }


def spool_usage(tmp_path):
    names = [n for n in os.listdir(tmp_path / "spool") if n.endswith((".json", ".json.bad"))]
    return len(names), sum(os.path.getsize(tmp_path / "spool" / n) for n in names)


def test_spool_is_bounded_in_bytes(returner, tmp_path, caplog):
    write = returner(
        f"mysql+pymysql://root@127.0.0.1:{closed_port()}/nowhere?connect_timeout=2",
        spool_max=1000,
        spool_max_bytes=1_000_000,
    )
    with caplog.at_level(logging.ERROR):
        for index in range(30):
            write(big_return(index))
    items, size = spool_usage(tmp_path)
    assert size <= 1_000_000 and items == 9, (items, size)
    assert "kiosk_mysql:spool_max_bytes 1000000" in caplog.text


def test_bad_bound_is_refused_naming_the_key(tmp_path):
    for value in ("lots", 0, -5, True, 1.5):
        opts = {"cachedir": str(tmp_path), "kiosk_mysql": {"db": "sqlite://", "spool_max_bytes": value}}
        with pytest.raises(
            KioskInputError, match=r"kiosk_mysql:spool_max_bytes .* is out of range \(accepted: a number of bytes"
        ):
            writer.settings(opts)
    assert (
        writer.settings({"cachedir": str(tmp_path), "kiosk_mysql": {"db": "sqlite://"}})["spool_max_bytes"]
        == spool.DEFAULT_SPOOL_MAX_BYTES
    )
