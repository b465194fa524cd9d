import pytest

from salt_kiosk import config
from salt_kiosk.db import store
from salt_kiosk.errors import KioskInputError


def test_default_db_is_sqlite_under_cachedir(tmp_path):
    url = store.db_url({"cachedir": str(tmp_path)})
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "kiosk" / "kiosk.sqlite3")


def test_db_mapping_with_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cr:t@\n")
    url = store.db_url(
        {"kiosk": {"db": {"host": "db.example", "user": "kiosk", "password_file": str(secret), "database": "kiosk"}}}
    )
    assert url.drivername == "mysql+pymysql"
    assert url.password == "s3cr:t@"
    assert url.port == 3306
    assert url.query["charset"] == "utf8mb4"
    assert "s3cr" not in url.render_as_string(hide_password=True)


def test_db_mapping_errors_name_the_key(tmp_path):
    with pytest.raises(KioskInputError, match="missing host"):
        store.db_url({"kiosk": {"db": {"database": "kiosk"}}})
    with pytest.raises(KioskInputError, match="unknown key"):
        store.db_url({"kiosk": {"db": {"host": "h", "database": "d", "passwd": "x"}}})
    with pytest.raises(KioskInputError, match="password_file"):
        store.db_url({"kiosk": {"db": {"host": "h", "database": "d", "password_file": str(tmp_path / "nope")}}})
    with pytest.raises(KioskInputError, match="not a database URL"):
        store.db_url({"kiosk": {"db": "not a url"}})


def test_campuses_validated():
    opts = {
        "kiosk": {
            "campuses": {"east": {"timezone": "Asia/Shanghai", "broadcast": "10.1.255.255", "relays": "relay-e1"}}
        }
    }
    assert config.campuses(opts) == {
        "east": {"name": "east", "timezone": "Asia/Shanghai", "broadcast": "10.1.255.255", "relays": ["relay-e1"]}
    }
    with pytest.raises(KioskInputError, match="kiosk:campuses:east:timezone is missing"):
        config.campuses({"kiosk": {"campuses": {"east": {"relays": []}}}})
    with pytest.raises(KioskInputError, match="'Mars/Olympus' is not a known time zone"):
        config.campuses({"kiosk": {"campuses": {"east": {"timezone": "Mars/Olympus"}}}})
    with pytest.raises(KioskInputError, match="not an IPv4"):
        config.campuses({"kiosk": {"campuses": {"east": {"timezone": "UTC", "broadcast": "10.1.255"}}}})


def test_default_state():
    assert config.default_state({}) == "off"
    assert config.default_state({"kiosk": {"default_state": True}}) == "on"
    with pytest.raises(KioskInputError):
        config.default_state({"kiosk": {"default_state": "maybe"}})
