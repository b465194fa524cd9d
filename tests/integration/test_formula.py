"""
The formula (srv/salt, srv/pillar) applied with state.apply from top.sls on the
real fleet: the central minion (role central, states from the master of
masters, which serves srv/salt), the relays and the kiosks (states from their
own relay masters). The pillar is split by role and targeted by minion id, as
in srv/pillar. Config files go to per-node temporary directories given in
pillar (kiosk:paths), so the running daemons' own configuration is left alone:
the relay masters' and relay minions' pki_dir too (kiosk:paths:master_pki,
minion_pki), where each relay writes its campus's shared master key pair and
kiosk keys (kiosk:campus_keys, generated here; the kiosk keys are the running
kiosks' own). Each kiosk's minion config lists its campus's relays
(kiosk:relays) as masters. The in-process checks of the same roles are
tests/unit/test_formula_render.py.
"""

import contextlib
import copy
import functools
import json
import os
import stat
import time

import pytest
import salt.utils.yaml

from salt_kiosk import console
from tests.conftest import CAMPUSES, _mysql_admin, campus_config

pytestmark = pytest.mark.fleet

#: The formula's pillar, split by role and targeted by minion id as in srv/pillar/top.sls.
PILLAR_TOP = """base:
  central:
    - match: list
    - kiosk_paths
    - kiosk_fleet
    - kiosk_central
  relay-e1,relay-e2,relay-w1,relay-w2:
    - match: list
    - kiosk_paths
    - kiosk_fleet
    - kiosk_relay
  relay-e1,relay-e2:
    - match: list
    - kiosk_keys_east
  relay-w1,relay-w2:
    - match: list
    - kiosk_keys_west
  kiosk-*:
    - kiosk_paths
    - kiosk_fleet
    - kiosk_kiosk
  kiosk-e*:
    - kiosk_relays_east
  kiosk-w*:
    - kiosk_relays_west
"""

#: The relays' database account (the returner's), written into their syndic
#: config only (the running relay masters keep the fleet's own settings).
RELAY_DB = {
    "host": "127.0.0.1",
    "user": "kiosk_relay",
    "password_file": "/etc/salt/kiosk-relay-db.secret",
    "database": "kiosk",
}


#: The standby master of masters' address in the formula's pillar (nothing listens there).
STANDBY_ADDRESS = "127.0.0.99"

#: A relay database account the central role creates (dropped by the test).
FORMULA_ACCOUNT = "kiosk_formula_relay"


def key_pair():
    """A fresh RSA key pair as Salt writes one: (master.pem text, master.pub text)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, pub.decode()


@functools.lru_cache(maxsize=1)
def _master_key_pairs():
    return {campus: key_pair() for campus in CAMPUSES}


def campus_keys(fleet):
    """
    ``kiosk:campus_keys`` of each campus: a fresh master key pair per campus
    and the public keys of the campus's running kiosks (their minion.pub).
    """
    keys = {}
    for campus, spec in CAMPUSES.items():
        pem, pub = _master_key_pairs()[campus]
        kiosks = {}
        for kiosk in spec["kiosks"]:
            with open(os.path.join(fleet.kiosks[kiosk].config["pki_dir"], "minion.pub"), encoding="utf-8") as handle:
                kiosks[kiosk] = handle.read()
        keys[campus] = {"master_pem": pem, "master_pub": pub, "kiosks": kiosks}
    return keys


def relay_ret_port(fleet):
    """The relay masters' ret_port in the formula's pillar (relay-e1's: the one its kiosks use)."""
    return fleet.syndics["relay-e1"].master.config["ret_port"]


def pillar_files(
    fleet,
    root,
    end="21:00",
    with_db=True,
    with_timezone=True,
    central_db=None,
    relay_db=None,
    keys=None,
    kiosk_relays=None,
):
    """The formula's pillar files, by name: shared, per role, per campus and per-node paths."""
    shared = {
        "central_address": "127.0.0.1",
        # A standby master of masters: each relay gets a second syndic's configuration.
        "standby_address": STANDBY_ADDRESS,
        "manage_services": False,
        "ports": {
            "publish": fleet.mom.config["publish_port"],
            "ret": fleet.mom.config["ret_port"],
            "relay_ret": relay_ret_port(fleet),
        },
        "campuses": campus_config(),
        "relay_addresses": dict(fleet.relay_address),
    }
    keys = keys or campus_keys(fleet)
    kiosk_relays = kiosk_relays or {campus: list(spec["relays"]) for campus, spec in CAMPUSES.items()}
    if not with_timezone:
        del shared["campuses"]["west"]["timezone"]
    central = {
        "default_state": "off",
        "rules": {
            "formula-late-clinic": {
                "power": "on",
                "dates": ["2027-03-01"],
                "start": "19:00",
                "end": end,
                "target": "*",
                "priority": 5,
            }
        },
    }
    # salt-api with the console (kiosk:api:console defaults to on).
    central["api"] = {"rest_cherrypy": {"port": 8123, "disable_ssl": True}, "external_auth": {}}
    if with_db:
        central["db"] = central_db or fleet.mom.config["kiosk"]["db"]
        # The relay account, created through kiosk:db (no kiosk:db_admin here).
        central["db_accounts"] = {
            FORMULA_ACCOUNT: {
                "role": "relay",
                "host": "127.0.0.1",
                "password_file": os.path.join(root, "relay-account.secret"),
            }
        }
    relay = {
        "db": relay_db or RELAY_DB,
        "sensors": {"driver": "simulated", "temperature": [5, 35], "interval": 60},
    }
    # Per-node paths, rendered with the node's minion id (the relay master's
    # and the relay minion's pki_dir too: the daemons' own keys stay untouched).
    paths = (
        '{"kiosk": {"paths": {"master_d": "%s/{{ opts[\'id\'] }}/master.d", '
        '"minion_d": "%s/{{ opts[\'id\'] }}/minion.d", '
        '"release_root": "%s/{{ opts[\'id\'] }}/releases-root", '
        '"release_dir": "%s/{{ opts[\'id\'] }}/releases", '
        '"master_pki": "%s/{{ opts[\'id\'] }}/pki-master", '
        '"minion_pki": "%s/{{ opts[\'id\'] }}/pki-minion", '
        '"syndic_standby": "%s/{{ opts[\'id\'] }}/syndic-standby", '
        '"systemd_dir": "%s/{{ opts[\'id\'] }}/systemd", '
        '"sbin": "%s/{{ opts[\'id\'] }}/sbin"}}}\n'
    ) % ((root,) * 9)
    files = {
        "top.sls": PILLAR_TOP,
        "kiosk_paths.sls": paths,
        "kiosk_fleet.sls": json.dumps({"kiosk": shared}) + "\n",
        "kiosk_central.sls": json.dumps({"kiosk": central}) + "\n",
        "kiosk_relay.sls": json.dumps({"kiosk": relay}) + "\n",
        "kiosk_kiosk.sls": json.dumps({"kiosk": {}}) + "\n",
    }
    for campus in CAMPUSES:
        # Each campus's key pair and kiosk keys only for its relays; its relay list only for its kiosks.
        files[f"kiosk_keys_{campus}.sls"] = json.dumps({"kiosk": {"campus_keys": {campus: keys[campus]}}}) + "\n"
        files[f"kiosk_relays_{campus}.sls"] = json.dumps({"kiosk": {"relays": kiosk_relays[campus]}}) + "\n"
    return files


@contextlib.contextmanager
def formula(fleet, root, **pillar_kwargs):
    """
    The formula's pillar in every master's pillar tree (the master of masters
    and every relay master serve srv/salt from their file_roots). Yields
    ``{name: [paths of that pillar file, one per master]}``.
    """
    masters = [fleet.mom] + [syndic.master for syndic in fleet.syndics.values()]
    secret = os.path.join(root, "relay-account.secret")
    with open(secret, "w", encoding="utf-8") as handle:
        handle.write("formula-relay-secret\n")
    os.chmod(secret, 0o600)
    with contextlib.ExitStack() as stack:
        files = {}
        for master in masters:
            for name, text in pillar_files(fleet, root, **pillar_kwargs).items():
                files.setdefault(name, []).append(stack.enter_context(master.pillar_tree.base.temp_file(name, text)))
        refresh(fleet)
        try:
            yield files
        finally:
            # A state run still going (a timed-out CLI call) must not lose its
            # pillar halfway: without kiosk:paths it would write the daemons'
            # real configuration directories.
            wait_for_state_runs(fleet)
    refresh(fleet)


def wait_for_state_runs(fleet, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ret = fleet.salt_cli(timeout=60).run("saltutil.running", minion_tgt="*")
        running = ret.data if isinstance(ret.data, dict) else {}
        if ret.returncode == 0 and not [
            job
            for jobs in running.values()
            if isinstance(jobs, list)
            for job in jobs
            if str(job.get("fun", "")).startswith("state.")
        ]:
            return
        time.sleep(5)


def refresh(fleet):
    ret = fleet.salt_cli(timeout=120).run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")
    assert ret.returncode == 0, ret


def apply(fleet, *args, tgt="*"):
    # A highstate syncs every dynamic module type from the relay masters first:
    # minutes on a busy machine.
    ret = fleet.salt_cli(timeout=600).run("state.apply", *args, minion_tgt=tgt)
    assert isinstance(ret.data, dict), ret
    # salt-factories unwraps the return of a single targeted minion.
    return ret.data if tgt == "*" else {tgt: ret.data}


def chunks(data):
    return {minion: list(states.values()) for minion, states in data.items()}


def read(*parts):
    with open(os.path.join(*parts), encoding="utf-8") as handle:
        return handle.read()


def mode(*parts):
    return stat.S_IMODE(os.stat(os.path.join(*parts)).st_mode)


def private_lines(fleet):
    """The body lines of every campus's private master key (none may be in a state return)."""
    return [line for keys in campus_keys(fleet).values() for line in keys["master_pem"].splitlines()[1:-1]]


def assert_campus_keys_and_masters(fleet, root, ids):
    """Each relay holds its campus's key pair and kiosk keys only; each kiosk lists its campus's relays."""
    keys = campus_keys(fleet)
    for relay in fleet.relay_minions:
        campus = fleet.campus_of[relay]
        pki = os.path.join(root, relay, "pki-master")
        assert {"kiosk-campus-master-key", "kiosk-campus-master-pub", "kiosk-relay-minion-master-pub"} <= ids[relay]
        assert read(pki, "master.pem") == keys[campus]["master_pem"] and mode(pki, "master.pem") == 0o400, relay
        assert read(pki, "master.pub") == keys[campus]["master_pub"] and mode(pki, "master.pub") == 0o644, relay
        assert read(root, relay, "pki-minion", "minion_master.pub") == keys[campus]["master_pub"], relay
        # Its own campus's kiosks, never the other campus's.
        assert sorted(os.listdir(os.path.join(pki, "minions"))) == sorted(CAMPUSES[campus]["kiosks"]), relay
        for kiosk in CAMPUSES[campus]["kiosks"]:
            assert f"kiosk-seeded-key-{kiosk}" in ids[relay]
            assert read(pki, "minions", kiosk) == keys[campus]["kiosks"][kiosk]
        syndic = salt.utils.yaml.safe_load(read(root, relay, "master.d", "kiosk-syndic.conf"))
        assert syndic["ret_port"] == relay_ret_port(fleet), syndic  # one ret_port for every relay, an int
        # The second salt-syndic, for the standby master of masters: the same
        # settings, the standby's address, its own pid and log files.
        assert {"kiosk-standby-syndic-master", "kiosk-standby-syndic-config", "kiosk-standby-syndic-unit"} <= ids[relay]
        standby = salt.utils.yaml.safe_load(read(root, relay, "syndic-standby", "master.d", "kiosk-syndic.conf"))
        assert standby["syndic_master"] == STANDBY_ADDRESS and standby["syndic_pidfile"] != syndic.get("syndic_pidfile")
        assert {k: v for k, v in standby.items() if not k.startswith("syndic_")} == {
            k: v for k, v in syndic.items() if not k.startswith("syndic_")
        }
        assert standby["syndic_master_port"] == syndic["syndic_master_port"]
        assert salt.utils.yaml.safe_load(read(root, relay, "syndic-standby", "minion"))["id"] == relay
        unit = read(root, relay, "systemd", "salt-syndic-standby.service")
        assert f"ExecStart=/usr/bin/salt-syndic -c {root}/{relay}/syndic-standby\n" in unit, unit
    for kiosk in fleet.kiosks:
        campus = fleet.campus_of[kiosk]
        config = salt.utils.yaml.safe_load(read(root, kiosk, "minion.d", "kiosk.conf"))
        assert config["master"] == [fleet.relay_address[relay] for relay in CAMPUSES[campus]["relays"]], config
        assert config["master_port"] == relay_ret_port(fleet) and config["transport"] == "tcp", config
        assert config["publish_port"] == fleet.mom.config["publish_port"], config
        assert config["kiosk"]["campus"] == campus and "master_type" not in config, config


def test_formula_converges_every_role(fleet, fleet_inventory, tmp_path):
    root = str(tmp_path)
    try:
        with formula(fleet, root) as pillar_files_by_name:
            first = apply(fleet)
            assert sorted(first) == fleet.minion_ids, sorted(first)
            for minion, states in chunks(first).items():
                assert states and all(s["result"] is True for s in states), (minion, states)
            ids = {m: {s["__id__"] for s in states} for m, states in chunks(first).items()}
            assert {
                "kiosk-central-config",
                "kiosk-schema",
                "kiosk-rule-formula-late-clinic",
                f"kiosk-db-account-{FORMULA_ACCOUNT}",
            } <= ids["central"]
            assert {"kiosk-syndic-config", "kiosk-relay-minion-config", "kiosk-release-root"} <= ids["relay-w1"]
            assert {"kiosk-minion-config", "kiosk-release-dir"} <= ids["kiosk-e2"]
            with open(os.path.join(root, "relay-w1", "master.d", "kiosk-syndic.conf"), encoding="utf-8") as handle:
                syndic = handle.read()
            assert "syndic_master: 127.0.0.1" in syndic and "transport: tcp" in syndic
            assert f"syndic_master_port: {fleet.mom.config['ret_port']}" in syndic  # an int, not a string
            with open(os.path.join(root, "kiosk-e1", "minion.d", "kiosk.conf"), encoding="utf-8") as handle:
                assert "kiosk.release" in handle.read()
            # The central master's master_id is its address as the syndics name it.
            central = salt.utils.yaml.safe_load(read(root, "central", "master.d", "kiosk.conf"))
            assert central["master_id"] == "127.0.0.1", central
            assert central["engines"][0]["kiosk_scheduler"]["peers"] == [STANDBY_ADDRESS], central
            # rest_cherrypy serves the console from the installed library, beside the pillar's own options.
            rest = central["rest_cherrypy"]
            assert rest == dict(console.rest_cherrypy_settings(), port=8123, disable_ssl=True), rest
            assert os.path.isfile(rest["app"]) and os.path.isfile(os.path.join(rest["static"], "console.js"))
            # Several relays per campus: the shared key pair (master.pem 0400),
            # the campus's kiosk keys, the kiosks' master lists.
            assert_campus_keys_and_masters(fleet, root, ids)

            second = apply(fleet)
            changed = {m: [s["__id__"] for s in states if s["changes"]] for m, states in chunks(second).items()}
            assert all(not ids for ids in changed.values()), changed
            dry = apply(fleet, "test=True")
            assert all(s["result"] is True and not s["changes"] for states in chunks(dry).values() for s in states), dry
            returns = json.dumps([first, second, dry])
            assert not [line for line in private_lines(fleet) if line in returns]

            # Kiosks get none of the database, API, key or enrolment settings
            # (the fleet's shared facts and their campus's relay list only);
            # each relay gets its own campus's keys only; the relays' syndic
            # config carries the relay account, not the owner's.
            for kiosk in fleet.kiosks:
                pillar = fleet.salt_cli().run("pillar.item", "kiosk", minion_tgt=kiosk).data["kiosk"]
                assert sorted(pillar) == [
                    "campuses",
                    "central_address",
                    "manage_services",
                    "paths",
                    "ports",
                    "relay_addresses",
                    "relays",
                    "standby_address",
                ], (kiosk, pillar)
                # Salt 3008 masks pillar values in CLI output unless asked not to.
                relays = fleet.salt_cli().run("pillar.get", "kiosk:relays", "unmask=True", minion_tgt=kiosk).data
                assert relays == list(CAMPUSES[fleet.campus_of[kiosk]]["relays"]), (kiosk, relays)
            for relay in ("relay-e2", "relay-w1"):
                pillar = fleet.salt_cli().run("pillar.item", "kiosk:campus_keys", minion_tgt=relay).data
                assert list(pillar["kiosk:campus_keys"]) == [fleet.campus_of[relay]], relay
            assert "user: kiosk_relay" in syndic and "password_file: /etc/salt/kiosk-relay-db.secret" in syndic
            assert fleet.mom.config["kiosk"]["db"] not in syndic
            # A rule change in pillar reaches the plan.
            text = pillar_files(fleet, root, end="22:30")["kiosk_central.sls"]
            for path in pillar_files_by_name["kiosk_central.sls"]:
                path.write_text(text)
            refresh(fleet)
            third = apply(fleet, tgt="central")
            rule = third["central"]
            assert any(s["changes"] for s in rule.values() if s["__id__"] == "kiosk-rule-formula-late-clinic"), rule
            plan = (
                fleet.salt_run_cli().run("kiosk_power.plan", "id:kiosk-e1", "since=2027-03-01", "until=2027-03-02").data
            )
            ends = [t for t in plan["kiosk-e1"]["transitions"] if t["state"] == "off"]
            assert any("22:30" in t["at"] for t in ends), plan["kiosk-e1"]["transitions"]
    finally:
        fleet.salt_run_cli().run("kiosk_power.rule_remove", "formula-late-clinic")
        _mysql_admin(f"DROP USER IF EXISTS '{FORMULA_ACCOUNT}'@'127.0.0.1'")


@pytest.mark.parametrize(
    "pillar, missing", [({"with_db": False}, "kiosk:db"), ({"with_timezone": False}, "kiosk:campuses:west:timezone")]
)
def test_missing_pillar_key_fails_naming_it_and_applies_nothing(fleet, tmp_path, pillar, missing):
    with formula(fleet, str(tmp_path), **pillar):
        ret = apply(fleet, tgt="central")
    states = list(ret["central"].values())
    assert len(states) == 1 and states[0]["result"] is False, states
    assert missing in states[0]["comment"]
    assert not os.path.exists(os.path.join(str(tmp_path), "central", "master.d"))


def test_bad_keys_or_relay_list_fail_naming_the_setting_and_write_nothing(fleet, tmp_path):
    """
    Pillar is untrusted input: a kiosk id that is a path (relay-e1), a kiosk
    key that is no PEM key (relay-w1), a kiosk's relay list mixing campuses
    (kiosk-e1). One apply on the three: each fails with one state naming the
    setting, and nothing of its role is written.
    """
    root = str(tmp_path)
    keys = copy.deepcopy(campus_keys(fleet))
    keys["east"]["kiosks"]["../x"] = keys["east"]["kiosks"]["kiosk-e2"]
    keys["west"]["kiosks"]["kiosk-w1"] = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC kiosk-w1"
    relays = {"east": ["relay-e1", "relay-w1"], "west": ["relay-w1", "relay-w2"]}
    expected = {
        "relay-e1": ["kiosk:campus_keys:east:kiosks", "'../x' is not a valid minion id", "accepted"],
        "relay-w1": ["kiosk:campus_keys:west:kiosks:kiosk-w1 is not a PEM public key", "accepted"],
        "kiosk-e1": ["kiosk:relays mixes the relays of campuses east and west", "relay-w1 (west)", "accepted"],
    }
    with formula(fleet, root, keys=keys, kiosk_relays=relays):
        ret = fleet.salt_cli(timeout=600).run("-L", "state.apply", minion_tgt=",".join(expected))
    assert isinstance(ret.data, dict) and sorted(ret.data) == sorted(expected), ret
    for minion, words in expected.items():
        states = list(ret.data[minion].values())
        assert len(states) == 1 and states[0]["result"] is False, (minion, states)
        assert all(word in states[0]["comment"] for word in words), (minion, states[0]["comment"])
        assert not os.path.exists(os.path.join(root, minion)), (minion, os.listdir(root))
    assert not os.path.exists(os.path.join(root, "x"))
    assert not [line for line in private_lines(fleet) if line in json.dumps(ret.data)]
