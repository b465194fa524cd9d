import sqlalchemy as sa

from salt_kiosk.db import migrations, schema, store


def test_schema_created_and_versioned(kstore):
    with kstore.connect() as conn:
        assert migrations.current_version(conn) == migrations.SCHEMA_VERSION
        names = set(sa.inspect(conn).get_table_names())
    assert {"kiosk_schema", "kiosk_campuses", "kiosk_kiosks"} <= names


def test_upgrade_is_idempotent(kstore):
    assert migrations.upgrade(kstore.engine) == []
    assert migrations.upgrade(kstore.engine) == []
    with kstore.connect() as conn:
        rows = conn.execute(sa.select(schema.schema_table.c.version)).scalars().all()
    assert rows == [v for v, _d, _s in migrations.MIGRATIONS]


def test_upgrade_applies_only_new_steps(kstore, monkeypatch):
    calls = []
    extra = (migrations.SCHEMA_VERSION + 1, "test step", lambda conn: calls.append(conn.dialect.name))
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS + (extra,))
    assert migrations.upgrade(kstore.engine) == [migrations.SCHEMA_VERSION + 1]
    assert migrations.upgrade(kstore.engine) == []
    assert len(calls) == 1


def test_configured_campuses_mirrored(kstore, opts):
    assert kstore.campus_rows()["east"] == {
        "name": "east",
        "timezone": "Asia/Shanghai",
        "broadcast": "10.1.255.255",
        "relays": ["relay-e1", "relay-e2"],
    }
    opts["kiosk"]["campuses"] = dict(
        opts["kiosk"]["campuses"], east=dict(opts["kiosk"]["campuses"]["east"], relays=["relay-e9"])
    )
    assert store.open_store(opts).campus_rows()["east"]["relays"] == ["relay-e9"]


def test_unreachable_database_is_a_clear_error(tmp_path):
    import pytest

    from salt_kiosk.errors import KioskStoreError

    opts = {"cachedir": str(tmp_path), "kiosk": {"db": "mysql+pymysql://nobody:pw@127.0.0.1:1/kiosk"}}
    with pytest.raises(KioskStoreError) as exc:
        store.open_store(opts)
    assert "mysql+pymysql://nobody:***@127.0.0.1:1/kiosk is unavailable" in str(exc.value)
    assert "pw@" not in str(exc.value)
