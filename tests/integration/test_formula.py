"""
The formula (srv/salt, srv/pillar) applied with state.apply from top.sls on the
real fleet: the central minion (role central, states from the master of
masters, which serves srv/salt), the relays and the kiosks (states from their
own relay masters). The pillar is split by role and targeted by minion id, as
in srv/pillar. Config files go to per-node temporary directories given in
pillar (kiosk:paths), so the running daemons' own configuration is left alone.
"""

import contextlib
import json
import os
import time

import pytest

from tests.conftest import _mysql_admin, campus_config

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
  kiosk-*:
    - kiosk_paths
    - kiosk_kiosk
"""

#: The relays' database account (the returner's), written into their syndic
#: config only (the running relay masters keep the fleet's own settings).
RELAY_DB = {
    "host": "127.0.0.1",
    "user": "kiosk_relay",
    "password_file": "/etc/salt/kiosk-relay-db.secret",
    "database": "kiosk",
}


#: A relay database account the central role creates (dropped by the test).
FORMULA_ACCOUNT = "kiosk_formula_relay"


def pillar_files(fleet, root, end="21:00", with_db=True, with_timezone=True, central_db=None, relay_db=None):
    """The formula's pillar files, by name: shared, per role, and per-node paths."""
    shared = {
        "central_address": "127.0.0.1",
        "ports": {"publish": fleet.mom.config["publish_port"], "ret": fleet.mom.config["ret_port"]},
        "campuses": campus_config(),
    }
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
        "relay_addresses": dict(fleet.relay_address),
        "sensors": {"driver": "simulated", "temperature": [5, 35], "interval": 60},
    }
    # Per-node paths, rendered with the node's minion id.
    paths = (
        '{"kiosk": {"paths": {"master_d": "%s/{{ opts[\'id\'] }}/master.d", '
        '"minion_d": "%s/{{ opts[\'id\'] }}/minion.d", '
        '"release_root": "%s/{{ opts[\'id\'] }}/releases-root", '
        '"release_dir": "%s/{{ opts[\'id\'] }}/releases", '
        '"sbin": "%s/{{ opts[\'id\'] }}/sbin"}}}\n'
    ) % (root, root, root, root, root)
    return {
        "top.sls": PILLAR_TOP,
        "kiosk_paths.sls": paths,
        "kiosk_fleet.sls": json.dumps({"kiosk": shared}) + "\n",
        "kiosk_central.sls": json.dumps({"kiosk": central}) + "\n",
        "kiosk_relay.sls": json.dumps({"kiosk": relay}) + "\n",
        "kiosk_kiosk.sls": json.dumps({"kiosk": {}}) + "\n",
    }


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

            second = apply(fleet)
            changed = {m: [s["__id__"] for s in states if s["changes"]] for m, states in chunks(second).items()}
            assert all(not ids for ids in changed.values()), changed
            dry = apply(fleet, "test=True")
            assert all(s["result"] is True and not s["changes"] for states in chunks(dry).values() for s in states), dry

            # Kiosks get none of the database, API or enrolment settings; the
            # relays' syndic config carries the relay account, not the owner's.
            for kiosk in fleet.kiosks:
                pillar = fleet.salt_cli().run("pillar.item", "kiosk", minion_tgt=kiosk).data["kiosk"]
                assert sorted(pillar) == ["paths"], (kiosk, pillar)
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
