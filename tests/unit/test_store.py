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


def _tag_index(conn):
    """The indexed length of kiosk_events' tag index (None: the whole tag), or False when it is missing."""
    if conn.dialect.name == "mysql":
        rows = conn.exec_driver_sql(
            "SELECT SUB_PART FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = 'kiosk_events' AND INDEX_NAME = 'ix_kiosk_events_tag'"
        ).all()
        return rows[0][0] if rows else False
    indexes = {index["name"]: index for index in sa.inspect(conn).get_indexes("kiosk_events")}
    return None if indexes.get("ix_kiosk_events_tag", {}).get("column_names") == ["tag"] else False


def test_events_tag_index_is_a_prefix_on_mysql(kstore):
    # Written faster: the events of one job land side by side in the index.
    with kstore.connect() as conn:
        expected = schema.EVENT_TAG_PREFIX if conn.dialect.name == "mysql" else None
        assert _tag_index(conn) == expected


def test_schema_15_shortens_the_events_tag_index(kstore):
    with kstore.begin() as conn:
        if conn.dialect.name == "mysql":
            # As schema 6 made it: the whole tag.
            conn.exec_driver_sql(
                "ALTER TABLE kiosk_events DROP INDEX ix_kiosk_events_tag, ADD INDEX ix_kiosk_events_tag (tag)"
            )
            assert _tag_index(conn) is None
        conn.execute(schema.schema_table.delete().where(schema.schema_table.c.version == 15))
    assert migrations.upgrade(kstore.engine) == [15]
    with kstore.connect() as conn:
        assert _tag_index(conn) == (schema.EVENT_TAG_PREFIX if conn.dialect.name == "mysql" else None)
        assert migrations.current_version(conn) == migrations.SCHEMA_VERSION
    assert migrations.upgrade(kstore.engine) == []
