"""
Database accounts by role, on the real MariaDB server.

- Finding 11 (last item): every process that opened the store ran the schema
  migrations, so a relay's returner migrated the central database and the
  relay's account needed DDL rights. Now only the schema owner (the master
  of masters) migrates; anyone else checks the version and says where to run
  the migration.
- Build item 5: the relay returner account holds SELECT, INSERT and UPDATE on
  the result tables only, and that is enough for the returner.

The ``kiosk_store.account_present`` state on the fleet's central minion is in
tests/integration/security/test_db_accounts.py.
"""

import json
import logging
import secrets
import uuid

import pymysql
import pytest
import sqlalchemy as sa

from salt_kiosk import clock
from salt_kiosk.db import accounts, migrations, schema, store
from salt_kiosk.errors import KioskInputError, KioskSchemaError
from salt_kiosk.jobs import cache, writer
from tests.conftest import MYSQL_HOST, MYSQL_PORT, _mysql_admin

pytestmark = pytest.mark.mysql


@pytest.fixture
def relay_account(mysql_db):
    """A relay account on a database whose schema the owner created."""
    engine = store.make_engine(mysql_db)
    migrations.upgrade(engine)
    engine.dispose()
    user = f"kr_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(18)
    done = accounts.ensure_account(mysql_db, user, password, "relay", host="%")
    url = sa.engine.make_url(mysql_db).set(username=user, password=password)
    try:
        yield done, url.render_as_string(hide_password=False)
    finally:
        store.dispose_all()
        writer.JobResults.dispose_all()
        _mysql_admin(f"DROP USER IF EXISTS '{user}'@'%'")


def relay_opts(url, tmp_path):
    """A relay's syndic master: no order_masters, the returner on the relay account."""
    return {
        "cachedir": str(tmp_path),
        "id": "relay-e1",
        "kiosk_mysql": {"db": url, "master_id": "relay-e1", "spool_dir": str(tmp_path / "spool")},
    }


def test_relay_account_is_created_with_result_grants_only(relay_account, mysql_db):
    done, url = relay_account
    parsed = sa.engine.make_url(url)
    assert done["changes"]["account"] == "created"
    assert set(done["changes"]["privileges"]["new"]) == {
        f"{done['database']}.{t}" for t in accounts.RESULT_TABLES + ("kiosk_schema",)
    }
    assert parsed.password not in json.dumps(done)
    # Applied again: nothing to change. A new password is a change, never shown.
    again = accounts.ensure_account(mysql_db, parsed.username, parsed.password, "relay", host="%")
    assert again["changes"] == {}
    other = accounts.ensure_account(mysql_db, parsed.username, "another-secret", "relay", host="%", test=True)
    assert other["changes"] == {"password": "changed"} and "another-secret" not in json.dumps(other)


def test_relay_account_writes_results_and_nothing_else(relay_account, tmp_path):
    _done, url = relay_account
    opts = relay_opts(url, tmp_path)
    results = writer.JobResults.get(opts)
    ret = {
        "jid": "20261125000000000042",
        "id": "kiosk-e1",
        "fun": "test.ping",
        "return": True,
        "retcode": 0,
        "success": True,
    }
    assert results.write("return", results.return_row(ret)) == "written"
    assert cache.get_jid(opts, "20261125000000000042")["kiosk-e1"]["return"] is True
    # A relay's master never deletes results (only the owner cleans up).
    assert cache.clean_old_jobs(dict(opts, keep_jobs_seconds=1)) == 0
    parsed = sa.engine.make_url(url)
    conn = pymysql.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
        autocommit=True,
    )
    refused = []
    statements = [
        "INSERT INTO kiosk_rules (name, state, start_min, end_min, target, priority, revision, created_revision, "
        "created_at, updated_at) VALUES ('evil', 'off', 0, 1440, '*', 99, 1, 1, NOW(), NOW())",
        "UPDATE kiosk_meta SET value = 'x' WHERE `key` = 'rules_revision'",
        "INSERT INTO kiosk_scheduler_jobs (id, next_run_time, job) VALUES ('x', 0, '{}')",
        "INSERT INTO kiosk_tasks (task_id, tgt, fun, arg, unit, timeout, concurrency, total, state, created_at) "
        "VALUES ('t', '\"*\"', 'cmd.run', '[]', 1, 1, 1, 1, 'pending', NOW())",
        "UPDATE kiosk_kiosks SET ip = '10.9.9.9'",
        "DELETE FROM kiosk_returns",
        "CREATE TABLE kiosk_evil (id INT)",
        "DROP TABLE kiosk_events",
        "SELECT * FROM kiosk_kiosks",
    ]
    try:
        with conn.cursor() as cursor:
            for sql in statements:
                try:
                    cursor.execute(sql)
                except pymysql.err.OperationalError as exc:
                    refused.append(exc.args[0])
                else:
                    pytest.fail(f"the relay account may run: {sql}")
    finally:
        conn.close()
    # 1142: command denied on the table, 1044: access denied to the database.
    assert set(refused) <= {1142, 1044, 1143} and len(refused) == len(statements)


def test_relay_returner_never_migrates_and_says_where_to(mysql_db, tmp_path, caplog):
    # The owner created an older schema (version 1 only).
    engine = store.make_engine(mysql_db)
    with engine.begin() as conn:
        schema.schema_table.create(conn)
        migrations.MIGRATIONS[0][2](conn)
        conn.execute(schema.schema_table.insert().values(version=1, description="old", applied_at=clock.utcnow()))
    opts = relay_opts(mysql_db, tmp_path)  # even with the owner's credentials: a relay does not migrate
    results = writer.JobResults.get(opts)
    ret = {"jid": "20261125000000000043", "id": "kiosk-e1", "fun": "test.ping", "return": True, "retcode": 0}
    with caplog.at_level(logging.ERROR):
        assert results.write("return", results.return_row(ret)) == "spooled"
    assert "run the migration on the master of masters" in caplog.text
    with engine.connect() as conn:
        assert migrations.current_version(conn) == 1
        assert not sa.inspect(conn).has_table("kiosk_returns")
    writer.JobResults.dispose_all()
    # Nor does a minion or any master that is not the master of masters opening the store.
    with pytest.raises(KioskSchemaError, match="run the migration on the master of masters"):
        store.open_store({"cachedir": str(tmp_path), "kiosk": {"db": mysql_db}})
    with engine.connect() as conn:
        assert migrations.current_version(conn) == 1
    # The owner does; then the relay's spooled return reaches the database.
    store.open_store({"cachedir": str(tmp_path), "order_masters": True, "kiosk": {"db": mysql_db}})
    results = writer.JobResults.get(opts)
    results.down_until = 0.0
    assert results.flush() == 1
    assert cache.get_jid(opts, "20261125000000000043")["kiosk-e1"]["return"] is True
    writer.JobResults.dispose_all()
    engine.dispose()


def test_account_names_are_checked_before_any_sql(mysql_db):
    for user in ("x'@'%' IDENTIFIED BY 'p'; --", "a b", ""):
        with pytest.raises(KioskInputError, match="database user"):
            accounts.ensure_account(mysql_db, user, "pw", "relay")
    with pytest.raises(KioskInputError, match="account role 'admin' is unknown"):
        accounts.ensure_account(mysql_db, "kiosk_x", "pw", "admin")
    with pytest.raises(KioskInputError, match="database host pattern"):
        accounts.ensure_account(mysql_db, "kiosk_x", "pw", "relay", host="%' OR 1=1")
