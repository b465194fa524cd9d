"""
Database accounts by role, on the real MariaDB server: the
``kiosk_store.account_present`` state through salt-call on the fleet's central
minion creates a relay account that reads the result tables and nothing else.
The library tests are in tests/functional/security/test_db_accounts.py.
"""

import secrets
import uuid

import pymysql
import pytest
import sqlalchemy as sa

from tests.conftest import MYSQL_PORT, _mysql_admin

pytestmark = pytest.mark.mysql


@pytest.mark.fleet
def test_account_state_on_the_central_minion(fleet, tmp_path):
    """``kiosk_store.account_present`` through salt-call on the real central minion."""
    user = f"kr_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(18)
    secret = tmp_path / "relay.secret"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    args = (
        "state.single",
        "kiosk_store.account_present",
        f"name={user}",
        "role=relay",
        f"password_file={secret}",
        "host=127.0.0.1",
    )
    try:
        dry = fleet.central.salt_call_cli().run(*args, "test=True")
        (state,) = dry.data.values()
        assert state["result"] is None and state["changes"]["account"] == "created", dry
        real = fleet.central.salt_call_cli().run(*args)
        (state,) = real.data.values()
        assert state["result"] is True and state["changes"]["account"] == "created", real
        assert password not in real.stdout and password not in dry.stdout
        again = fleet.central.salt_call_cli().run(*args)
        (state,) = again.data.values()
        assert state["result"] is True and state["changes"] == {}, again
        database = sa.engine.make_url(fleet.mom.config["kiosk"]["db"]).database
        conn = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user=user, password=password, database=database)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM kiosk_returns")
                with pytest.raises(pymysql.err.OperationalError):
                    cursor.execute("SELECT COUNT(*) FROM kiosk_rules")
        finally:
            conn.close()
    finally:
        _mysql_admin(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
