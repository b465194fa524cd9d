"""
The formula's relay and kiosk roles (srv/salt/kiosk/relay.sls, kiosk.sls)
applied in-process with Salt's own state system (``salt-call --local`` as a
library: ``salt.client.Caller`` with a local file client serving srv/salt),
every path under a temporary directory through kiosk:paths. No daemon, no
network: the fleet run is tests/integration/test_formula.py.

Several relays per campus: each relay writes its campus's shared master key
pair and kiosk keys, a kiosk gets its campus's relays as masters, and bad
pillar fails naming the setting with nothing written. Also the example
pillar (srv/pillar): who gets the relay lists and the keys.
"""

import json
import os
import shutil
import stat
import tempfile

import pytest
import salt.client
import salt.config
import salt.pillar
import salt.utils.yaml

from tests.conftest import REPO_ROOT
from tests.unit.test_config import key_pair

SRV_SALT = os.path.join(REPO_ROOT, "srv", "salt")
SRV_PILLAR = os.path.join(REPO_ROOT, "srv", "pillar")
CAMPUSES = {
    "east": {"timezone": "Asia/Shanghai", "broadcast": "10.1.255.255", "relays": ["relay-e1", "relay-e2"]},
    "west": {"timezone": "Europe/Berlin", "broadcast": "10.2.255.255", "relays": ["relay-w1"]},
}
ADDRESSES = {"relay-e1": "10.1.0.2", "relay-e2": "10.1.0.3", "relay-w1": "10.2.0.2"}
PORTS = {"publish": 4505, "ret": 4506, "relay_ret": 4516}


@pytest.fixture(scope="module")
def keys():
    return {
        "east": key_pair(),
        "west": key_pair(),
        "kiosk-e1": key_pair()[1],
        "kiosk-e2": key_pair()[1],
        "kiosk-w1": key_pair()[1],
    }


@pytest.fixture
def callers(tmp_path_factory):
    """
    ``callers(minion_id)``: an in-process salt-call --local for that id, srv/salt
    as its file root. Made afresh for each test: Salt's loader keeps some of
    the last made minion's state (its grains) process-wide.
    """
    made = {}

    def get(minion_id):
        if minion_id not in made:
            root = str(tmp_path_factory.mktemp(f"salt-{minion_id}"))
            opts = salt.config.minion_config(None)
            opts.update(
                id=minion_id,
                file_client="local",
                file_roots={"base": [SRV_SALT]},
                pillar_roots={"base": [os.path.join(root, "pillar")]},
                root_dir=root,
                cachedir=os.path.join(root, "cache"),
                pki_dir=os.path.join(root, "pki"),
                sock_dir=os.path.join(root, "sock"),
                log_file=os.path.join(root, "minion.log"),
                conf_file=os.path.join(root, "minion"),
                grains_cache=False,
            )
            made[minion_id] = salt.client.Caller(mopts=opts)
        return made[minion_id]

    return get


def compile_pillar(minion_id, grains, roots=SRV_PILLAR):
    """The pillar of ``minion_id`` from ``roots`` (default: the example pillar), compiled as a master does."""
    opts = salt.config.master_config(None)
    cache = tempfile.mkdtemp()
    opts.update(
        pillar_roots={"base": [roots]}, file_roots={"base": [cache]}, cachedir=cache, file_client="local", ext_pillar=[]
    )
    pillar = salt.pillar.Pillar(opts, dict(grains), minion_id, "base").compile_pillar()
    assert "_errors" not in pillar, pillar
    return pillar


def relay_pillar(keys, out, campus_keys=None, campuses=None):
    """A relay's pillar as srv/pillar gives it (fleet + relay + its campus's keys), paths under ``out``."""
    if campus_keys is None:
        campus_keys = {
            "east": {
                "master_pem": keys["east"][0],
                "master_pub": keys["east"][1],
                "kiosks": {"kiosk-e1": keys["kiosk-e1"], "kiosk-e2": keys["kiosk-e2"]},
            }
        }
    return {
        "kiosk": {
            "central_address": "10.0.0.10",
            "ports": PORTS,
            "campuses": campuses or CAMPUSES,
            "relay_addresses": ADDRESSES,
            "db": {"host": "db.example", "user": "kiosk_relay", "password_file": "/nonexistent", "database": "kiosk"},
            "manage_packages": False,
            "campus_keys": campus_keys,
            "paths": {
                name: os.path.join(out, name)
                for name in ("master_d", "minion_d", "srv_salt", "release_root", "master_pki", "minion_pki")
            },
        }
    }


def kiosk_pillar(out, relays):
    return {
        "kiosk": {
            "ports": PORTS,
            "campuses": CAMPUSES,
            "relay_addresses": ADDRESSES,
            "relays": relays,
            "paths": {"minion_d": os.path.join(out, "minion_d"), "release_dir": os.path.join(out, "releases")},
        }
    }


def apply(caller, sls, pillar, **kwargs):
    ret = caller.cmd("state.sls", sls, pillar=pillar, **kwargs)
    assert isinstance(ret, dict), ret
    return {state["__id__"]: state for state in ret.values()}


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def written(out):
    return sorted(os.path.relpath(os.path.join(d, f), out) for d, _, files in os.walk(out) for f in files)


def test_relay_writes_the_campus_key_pair_and_its_kiosks_keys(callers, keys, tmp_path):
    out = str(tmp_path / "relay-e2")
    pillar = relay_pillar(keys, out)
    # The other campus's entry, if a relay ever got one, is not used.
    pillar["kiosk"]["campus_keys"]["west"] = {"master_pem": keys["west"][0], "master_pub": keys["west"][1]}
    caller = callers("relay-e2")

    dry = apply(caller, "kiosk.relay", pillar, test=True)
    assert all(s["result"] is None for s in dry.values() if s["__id__"].startswith("kiosk-")), dry
    assert not os.path.exists(out)

    first = apply(caller, "kiosk.relay", pillar)
    assert all(s["result"] is True for s in first.values()), first
    assert {
        "kiosk-campus-master-key",
        "kiosk-campus-master-pub",
        "kiosk-relay-minion-master-pub",
        "kiosk-seeded-key-kiosk-e1",
        "kiosk-seeded-key-kiosk-e2",
    } <= set(first)
    pki = os.path.join(out, "master_pki")
    assert read(os.path.join(pki, "master.pem")) == keys["east"][0] and mode(os.path.join(pki, "master.pem")) == 0o400
    assert read(os.path.join(pki, "master.pub")) == keys["east"][1] and mode(os.path.join(pki, "master.pub")) == 0o644
    assert read(os.path.join(out, "minion_pki", "minion_master.pub")) == keys["east"][1]
    assert sorted(os.listdir(os.path.join(pki, "minions"))) == ["kiosk-e1", "kiosk-e2"]
    assert read(os.path.join(pki, "minions", "kiosk-e2")) == keys["kiosk-e2"]
    assert mode(pki) == 0o700
    syndic = salt.utils.yaml.safe_load(read(os.path.join(out, "master_d", "kiosk-syndic.conf")))
    assert syndic["ret_port"] == 4516 and syndic["publish_port"] == 4505 and syndic["interface"] == "10.1.0.3"
    minion = salt.utils.yaml.safe_load(read(os.path.join(out, "minion_d", "kiosk.conf")))
    assert minion["kiosk"]["campus"] == "east"
    # The private key is in no state name, comment or return.
    text = json.dumps(first) + json.dumps(dry)
    assert not [line for line in keys["east"][0].splitlines()[1:-1] if line in text]
    assert first["kiosk-campus-master-key"]["changes"] == {"diff": "New file", "mode": "0400"}
    # ... nor in the minion's cache of the rendered states (contents_pillar).
    cache = caller.sminion.opts["cachedir"]
    for folder, _, files in os.walk(cache):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                assert keys["east"][0].splitlines()[3].encode() not in handle.read(), name

    second = apply(caller, "kiosk.relay", pillar)
    assert all(s["result"] is True and not s["changes"] for s in second.values()), second


def test_relay_of_a_single_relay_campus_keeps_its_own_key(callers, keys, tmp_path):
    out = str(tmp_path / "relay-w1")
    ret = apply(callers("relay-w1"), "kiosk.relay", relay_pillar(keys, out, campus_keys={}))
    assert all(s["result"] is True for s in ret.values()), ret
    assert not [i for i in ret if "key" in i or "master-pub" in i]
    assert not os.path.exists(os.path.join(out, "master_pki"))


def bad(keys, what):
    """Bad pillar for relay-e1, by name: (pillar changes, words the message must hold)."""
    east = {"master_pem": keys["east"][0], "master_pub": keys["east"][1], "kiosks": {"kiosk-e1": keys["kiosk-e1"]}}
    if what == "traversal id":
        east["kiosks"] = {"kiosk-e1": keys["kiosk-e1"], "../x": keys["kiosk-e2"]}
        return {"campus_keys": {"east": east}}, ["kiosk:campus_keys:east:kiosks", "'../x'", "accepted"]
    if what == "non-PEM key":
        east["kiosks"] = {"kiosk-e1": keys["kiosk-e1"], "kiosk-e2": "ssh-rsa AAAAB3NzaC1yc2E kiosk-e2"}
        return {"campus_keys": {"east": east}}, ["kiosk:campus_keys:east:kiosks:kiosk-e2", "not a PEM public key"]
    if what == "mismatched pair":
        east["master_pub"] = keys["west"][1]
        return {"campus_keys": {"east": east}}, ["kiosk:campus_keys:east:master_pub", "public half"]
    if what == "missing pair":
        return {"campus_keys": {}}, ["kiosk:campus_keys:east is missing", "2 relays"]
    if what == "relay in two campuses":
        campuses = dict(CAMPUSES, west=dict(CAMPUSES["west"], relays=["relay-w1", "relay-e1"]))
        return {"campus_keys": {"east": east}, "campuses": campuses}, ["kiosk:campuses:west:relays", "'relay-e1'"]
    raise AssertionError(what)


@pytest.mark.parametrize(
    "what", ["traversal id", "non-PEM key", "mismatched pair", "missing pair", "relay in two campuses"]
)
def test_bad_relay_pillar_fails_naming_the_setting_and_writes_nothing(callers, keys, tmp_path, what):
    out = str(tmp_path / "relay-e1")
    changes, words = bad(keys, what)
    pillar = relay_pillar(keys, out)
    pillar["kiosk"].update(changes)
    for test in (False, True):
        ret = apply(callers("relay-e1"), "kiosk.relay", pillar, test=test)
        assert list(ret) == ["kiosk-pillar-invalid"], ret
        state = ret["kiosk-pillar-invalid"]
        # test=True too: the same failure and message.
        assert state["result"] is False and not state["changes"], state
        assert all(word in state["comment"] for word in words), state["comment"]
        assert "nothing was applied" in state["comment"]
        key_lines = [line for key in (keys["east"][0], keys["kiosk-e2"]) for line in key.splitlines()[1:-1]]
        assert not [line for line in key_lines if line in state["comment"]], state["comment"]
    assert not os.path.exists(out)
    assert not os.path.exists(os.path.join(os.path.dirname(out), "x"))


def test_kiosk_lists_every_relay_of_its_campus_as_masters(callers, tmp_path):
    out = str(tmp_path / "kiosk-e1")
    ret = apply(callers("kiosk-e1"), "kiosk.kiosk", kiosk_pillar(out, ["relay-e1", "relay-e2"]))
    assert all(s["result"] is True for s in ret.values()), ret
    config = salt.utils.yaml.safe_load(read(os.path.join(out, "minion_d", "kiosk.conf")))
    assert config["master"] == ["10.1.0.2", "10.1.0.3"]
    assert config["master_port"] == 4516 and config["publish_port"] == 4505  # ints
    assert config["transport"] == "tcp" and config["minion_jid_queue_hwm"] == 100
    assert "master_type" not in config  # Salt's default: multi-master with a list
    assert config["kiosk"] == {"role": "kiosk", "campus": "east", "release_dir": os.path.join(out, "releases")}
    assert config["sls_list"] == ["kiosk.release"]


def test_kiosk_without_a_relay_list_keeps_the_master_it_was_installed_with(callers, tmp_path):
    out = str(tmp_path / "kiosk-w1")
    pillar = kiosk_pillar(out, None)
    del pillar["kiosk"]["relays"]
    ret = apply(callers("kiosk-w1"), "kiosk.kiosk", pillar)
    assert all(s["result"] is True for s in ret.values()), ret
    config = salt.utils.yaml.safe_load(read(os.path.join(out, "minion_d", "kiosk.conf")))
    assert not {"master", "master_port", "publish_port"} & set(config), config


@pytest.mark.parametrize(
    "relays, words",
    [
        (["relay-e1", "relay-w1"], ["kiosk:relays mixes the relays of campuses east and west", "relay-w1 (west)"]),
        (["relay-e1", "../x"], ["kiosk:relays", "'../x' is not a valid minion id"]),
        (None, ["kiosk:relays is missing"]),
    ],
)
def test_bad_kiosk_relay_list_fails_naming_it_and_writes_nothing(callers, tmp_path, relays, words):
    out = str(tmp_path / "kiosk-e2")
    ret = apply(callers("kiosk-e2"), "kiosk.kiosk", kiosk_pillar(out, relays))
    assert list(ret) == ["kiosk-pillar-invalid"], ret
    state = ret["kiosk-pillar-invalid"]
    assert state["result"] is False and all(word in state["comment"] for word in words), state["comment"]
    assert not os.path.exists(out)


def test_example_pillar_gives_relay_lists_to_kiosks_and_keys_to_no_one_else():
    claim = {"id": "central", "kiosk": {"role": "relay"}}
    east = compile_pillar("kiosk-e1", claim)["kiosk"]
    assert east["relays"] == ["relay-e1", "relay-e2"] and east["relay_addresses"]["relay-e2"] == "10.1.0.3"
    assert "campus_keys" not in east and "db" not in east
    assert compile_pillar("kiosk-w1", claim)["kiosk"]["relays"] == ["relay-w1"]
    assert isinstance(compile_pillar("relay-e1", claim)["kiosk"]["ports"]["relay_ret"], int)


def test_example_key_files_become_the_campus_pillar(keys, tmp_path):
    """srv/pillar/kiosk/keys/read.jinja, reading a key directory laid out as its comment says."""
    keydir = tmp_path / "kiosk-keys" / "east"
    (keydir / "kiosks").mkdir(parents=True)
    (keydir / "master.pem").write_text(keys["east"][0])
    (keydir / "master.pub").write_text(keys["east"][1])
    (keydir / "kiosks" / "kiosk-e1").write_text(keys["kiosk-e1"])
    roots = tmp_path / "pillar"
    (roots / "kiosk" / "keys").mkdir(parents=True)
    shutil.copy(os.path.join(REPO_ROOT, "srv", "pillar", "kiosk", "keys", "read.jinja"), roots / "kiosk" / "keys")
    (roots / "top.sls").write_text("base:\n  relay-e1:\n    - east\n")
    (roots / "east.sls").write_text(
        "{%- from 'kiosk/keys/read.jinja' import campus_keys with context %}\n"
        f"{{{{ campus_keys('east', base={str(tmp_path / 'kiosk-keys')!r}) }}}}\n"
    )
    pillar = compile_pillar("relay-e1", {"id": "relay-e1"}, roots=str(roots))
    assert pillar["kiosk"]["campus_keys"] == {
        "east": {"master_pem": keys["east"][0], "master_pub": keys["east"][1], "kiosks": {"kiosk-e1": keys["kiosk-e1"]}}
    }
    # Without the directory the file yields nothing (kiosk.relay then names the missing key).
    shutil.rmtree(keydir)
    assert compile_pillar("relay-e1", {"id": "relay-e1"}, roots=str(roots)) == {}


def test_a_relay_is_found_by_its_whole_id_not_a_substring(callers, keys, tmp_path):
    out = str(tmp_path / "relay-w1")
    campuses = dict(CAMPUSES, west=dict(CAMPUSES["west"], relays="relay-w10"))
    ret = apply(callers("relay-w1"), "kiosk.relay", relay_pillar(keys, out, campus_keys={}, campuses=campuses))
    assert list(ret) == ["kiosk-pillar-incomplete"], ret
    assert "kiosk:campuses:<campus>:relays entry for relay-w1" in ret["kiosk-pillar-incomplete"]["comment"]
    assert not os.path.exists(out)
