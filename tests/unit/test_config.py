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


# Several relays per campus: kiosk:campuses, kiosk:relays (a kiosk's masters)
# and kiosk:campus_keys (the relays' shared master key pair and kiosk keys).

TWO_CAMPUSES = {
    "east": {"timezone": "Asia/Shanghai", "relays": ["relay-e1", "relay-e2"]},
    "west": {"timezone": "Europe/Berlin", "relays": ["relay-w1"]},
}
ADDRESSES = {"relay-e1": "10.1.0.2", "relay-e2": "10.1.0.3", "relay-w1": "10.2.0.2"}


def key_pair(bits=2048):
    """A fresh RSA key pair as Salt writes it: (master.pem text, master.pub text)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, pub.decode()


@pytest.fixture(scope="module")
def keys():
    return {"east": key_pair(), "west": key_pair(), "kiosk-e1": key_pair()[1], "kiosk-e2": key_pair()[1]}


def keys_opts(keys, **entry):
    east = {"master_pem": keys["east"][0], "master_pub": keys["east"][1], "kiosks": {"kiosk-e1": keys["kiosk-e1"]}}
    east.update(entry)
    return {"kiosk": {"campuses": TWO_CAMPUSES, "campus_keys": {"east": east}}}


def test_a_relay_in_two_campuses_is_refused_naming_the_setting():
    campuses = {
        "east": {"timezone": "UTC", "relays": ["relay-e1", "relay-x"]},
        "west": {"timezone": "UTC", "relays": ["relay-x", "relay-w1"]},
    }
    with pytest.raises(KioskInputError) as exc:
        config.campuses({"kiosk": {"campuses": campuses}})
    message = str(exc.value)
    assert "kiosk:campuses:west:relays" in message and "'relay-x'" in message
    assert "kiosk:campuses:east:relays" in message and "one campus" in message
    twice = {"east": {"timezone": "UTC", "relays": ["relay-e1", "relay-e1"]}}
    with pytest.raises(KioskInputError, match=r"kiosk:campuses:east:relays lists relay 'relay-e1' twice"):
        config.campuses({"kiosk": {"campuses": twice}})
    # One campus per relay is fine.
    assert config.campuses({"kiosk": {"campuses": TWO_CAMPUSES}})["east"]["relays"] == ["relay-e1", "relay-e2"]


def test_kiosk_masters_are_the_relays_of_one_campus():
    opts = {"kiosk": {"campuses": TWO_CAMPUSES, "relay_addresses": ADDRESSES, "relays": ["relay-e2", "relay-e1"]}}
    assert config.kiosk_masters(opts) == {
        "campus": "east",
        "relays": ["relay-e2", "relay-e1"],
        "addresses": ["10.1.0.3", "10.1.0.2"],
    }
    opts["kiosk"]["relays"] = "relay-w1"
    assert config.kiosk_masters(opts)["addresses"] == ["10.2.0.2"]


@pytest.mark.parametrize(
    "relays, addresses, message",
    [
        (
            ["relay-e1", "relay-w1"],
            ADDRESSES,
            r"kiosk:relays mixes the relays of campuses east and west: relay-e1 \(east\), relay-w1 \(west\)",
        ),
        (
            ["relay-e1", "relay-z"],
            ADDRESSES,
            r"kiosk:relays names 'relay-z', which is a relay of no campus \(accepted: .*east: relay-e1, relay-e2; west: relay-w1",
        ),
        (["relay-e1", "../x"], ADDRESSES, r"kiosk:relays: '\.\./x' is not a valid minion id"),
        (["relay-e1", "relay-e1"], ADDRESSES, r"kiosk:relays lists relay 'relay-e1' twice"),
        (None, ADDRESSES, r"kiosk:relays is missing"),
        ({"relay-e1": 1}, ADDRESSES, r"kiosk:relays must be a list"),
        (["relay-e1", "relay-e2"], {"relay-e1": "10.1.0.2"}, r"kiosk:relay_addresses:relay-e2 is missing"),
        (
            ["relay-e1"],
            {"relay-e1": "10.1.0.2\n- evil"},
            r"kiosk:relay_addresses:relay-e1 '10.1.0.2\\n- evil' is not a relay address",
        ),
        (["relay-e1"], {"relay-e1": "0.0.0.0"}, r"kiosk:relay_addresses:relay-e1 '0.0.0.0' is not a relay address"),
        (
            ["relay-e1"],
            {"relay-e1": "10.1.0.300"},
            r"is not a relay address \(accepted: an IPv4 address or a host name",
        ),
        (
            ["relay-e1", "relay-e2"],
            {"relay-e1": "10.1.0.2", "relay-e2": "10.1.0.2"},
            r"relay-e2 '10.1.0.2' is the address of another relay",
        ),
    ],
)
def test_bad_kiosk_masters_name_the_setting(relays, addresses, message):
    opts = {"kiosk": {"campuses": TWO_CAMPUSES, "relay_addresses": addresses, "relays": relays}}
    with pytest.raises(KioskInputError, match=message):
        config.kiosk_masters(opts)


def test_kiosk_masters_accept_host_names():
    opts = {
        "kiosk": {
            "campuses": TWO_CAMPUSES,
            "relay_addresses": {"relay-w1": "relay-w1.hospital.example"},
            "relays": ["relay-w1"],
        }
    }
    assert config.kiosk_masters(opts)["addresses"] == ["relay-w1.hospital.example"]


def test_relay_keys_of_its_own_campus(keys):
    # CRLF line ends and surrounding blanks are cleaned as Salt cleans keys.
    crlf = "\n" + keys["kiosk-e2"].replace("\n", "\r\n") + "  \n"
    opts = keys_opts(keys, kiosks={"kiosk-e1": keys["kiosk-e1"], " kiosk-e2": crlf})
    # The other campus's entry is never read, even when it is broken.
    opts["kiosk"]["campus_keys"]["west"] = {"master_pem": "garbage", "kiosks": {"../x": "garbage"}}
    for relay in ("relay-e1", "relay-e2"):
        got = config.relay_keys(opts, relay)
        assert got["campus"] == "east" and got["relays"] == ["relay-e1", "relay-e2"]
        assert got["master_pem"] == keys["east"][0] and got["master_pub"] == keys["east"][1]
        assert got["kiosks"] == {"kiosk-e1": keys["kiosk-e1"], "kiosk-e2": keys["kiosk-e2"]}
    # A campus with one relay needs no shared pair.
    del opts["kiosk"]["campus_keys"]["west"]
    assert config.relay_keys(opts, "relay-w1") == {
        "campus": "west",
        "relays": ["relay-w1"],
        "master_pem": None,
        "master_pub": None,
        "kiosks": {},
    }


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"kiosks": {"../x": "KIOSK-E1"}},
            r"kiosk:campus_keys:east:kiosks: '\.\./x' is not a valid minion id \(accepted: ",
        ),
        (
            {"kiosks": {"kiosk-e1/../../master.pem": "KIOSK-E1"}},
            r"kiosk:campus_keys:east:kiosks: 'kiosk-e1/\.\./\.\./master\.pem' is not a valid",
        ),
        ({"kiosks": {".": "KIOSK-E1"}}, r"'\.' is not a valid minion id"),
        (
            {"kiosks": {"kiosk-e1": "ssh-rsa AAAAB3NzaC1yc2E kiosk"}},
            r"kiosk:campus_keys:east:kiosks:kiosk-e1 is not a PEM public key \(accepted: an RSA public key",
        ),
        (
            {"kiosks": {"kiosk-e1": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}},
            r"kiosk:campus_keys:east:kiosks:kiosk-e1 is not a PEM public key",
        ),
        ({"kiosks": {"kiosk-e1": "EAST_PEM"}}, r"kiosk:campus_keys:east:kiosks:kiosk-e1 is not a PEM public key"),
        (
            {"kiosks": {"relay-w1": "KIOSK-E1"}},
            r"kiosk:campus_keys:east:kiosks:relay-w1 is a relay \(kiosk:campuses:west:relays\)",
        ),
        (
            {"kiosks": ["kiosk-e1"]},
            r"kiosk:campus_keys:east:kiosks must be a mapping of kiosk minion id to its public key",
        ),
        (
            {"master_pem": "EAST_PUB"},
            r"kiosk:campus_keys:east:master_pem is not a PEM private key \(accepted: an unencrypted RSA private key",
        ),
        (
            {"master_pem": None},
            r"kiosk:campus_keys:east:master_pem is missing .*campus east has 2 relays \(relay-e1, relay-e2\)",
        ),
        (
            {"master_pub": "KIOSK-E1"},
            r"kiosk:campus_keys:east:master_pub is not the public half of kiosk:campus_keys:east:master_pem",
        ),
        ({"master_pub": "EAST_PEM"}, r"kiosk:campus_keys:east:master_pub is not a PEM public key"),
        (
            {"key": "x"},
            r"kiosk:campus_keys:east has unknown key\(s\) \['key'\] \(accepted: master_pem, master_pub, kiosks\)",
        ),
    ],
)
def test_bad_campus_keys_name_the_setting_never_the_key(keys, entry, message):
    values = {"KIOSK-E1": keys["kiosk-e1"], "EAST_PEM": keys["east"][0], "EAST_PUB": keys["east"][1]}

    def real(value):
        if isinstance(value, dict):
            return {k: real(v) for k, v in value.items()}
        return values.get(value, value) if isinstance(value, str) else value

    with pytest.raises(KioskInputError, match=message) as exc:
        config.relay_keys(keys_opts(keys, **real(entry)), "relay-e1")
    text = str(exc.value)
    for secret in (keys["east"][0], keys["kiosk-e1"]):
        assert not any(line in text for line in secret.splitlines()[1:-1]), text


def test_campus_keys_required_where_a_campus_has_several_relays(keys):
    opts = {"kiosk": {"campuses": TWO_CAMPUSES}}
    with pytest.raises(KioskInputError, match=r"kiosk:campus_keys:east is missing: campus east has 2 relays"):
        config.relay_keys(opts, "relay-e2")
    with pytest.raises(KioskInputError, match=r"relay 'relay-x' is in no campus"):
        config.relay_keys(opts, "relay-x")
    opts["kiosk"]["campus_keys"] = {"west": {"master_pem": keys["west"][0]}}
    with pytest.raises(KioskInputError, match=r"kiosk:campus_keys:west:master_pub is missing .*or neither"):
        config.relay_keys(opts, "relay-w1")
    # A relay listed in two campuses fails here too, naming the setting.
    opts["kiosk"]["campuses"] = dict(TWO_CAMPUSES, west={"timezone": "UTC", "relays": ["relay-w1", "relay-e2"]})
    with pytest.raises(KioskInputError, match=r"kiosk:campuses:west:relays lists relay 'relay-e2'"):
        config.relay_keys(opts, "relay-w1")


def test_small_rsa_keys_are_refused():
    pem, pub = key_pair(bits=1024)
    with pytest.raises(KioskInputError, match="at least 2048 bits"):
        config.public_key(pub, "kiosk:campus_keys:east:kiosks:kiosk-e1")
    opts = {"kiosk": {"campuses": TWO_CAMPUSES, "campus_keys": {"east": {"master_pem": pem, "master_pub": pub}}}}
    with pytest.raises(KioskInputError, match="master_pem is not a PEM private key"):
        config.relay_keys(opts, "relay-e1")
