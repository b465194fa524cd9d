"""
The formula (srv/salt, srv/pillar) applied with state.apply from top.sls on the
real fleet: the central minion (role central, states from the master of
masters), the relays and the kiosks (states from their own relay masters).
Config files go to per-node temporary directories given in pillar
(kiosk:paths), so the running daemons' own configuration is left alone.
"""

import contextlib
import json
import os

import pytest

from tests.conftest import REPO_ROOT, campus_config

pytestmark = pytest.mark.fleet

FORMULA = ["top.sls", "kiosk/map.jinja", "kiosk/central.sls", "kiosk/relay.sls", "kiosk/kiosk.sls", "kiosk/release.sls"]


def pillar_sls(fleet, root, end="21:00", with_db=True, with_timezone=True):
    kiosk = {
        "central_address": "127.0.0.1",
        "ports": {"publish": fleet.mom.config["publish_port"], "ret": fleet.mom.config["ret_port"]},
        "campuses": campus_config(),
        "relay_addresses": dict(fleet.relay_address),
        "default_state": "off",
        "rules": {"formula-late-clinic": {"power": "on", "dates": ["2027-03-01"], "start": "19:00", "end": end,
                                          "target": "*", "priority": 5}},
        "sensors": {"driver": "simulated", "temperature": [5, 35], "interval": 60},
    }
    if with_db:
        kiosk["db"] = fleet.mom.config["kiosk"]["db"]
    if not with_timezone:
        del kiosk["campuses"]["west"]["timezone"]
    text = json.dumps({"kiosk": kiosk})
    # Per-node paths, rendered with the node's grains.
    paths = ("{\"master_d\": \"%s/{{ grains['id'] }}/master.d\", \"minion_d\": \"%s/{{ grains['id'] }}/minion.d\", "
             "\"release_root\": \"%s/{{ grains['id'] }}/releases-root\", "
             "\"release_dir\": \"%s/{{ grains['id'] }}/releases\"}") % (root, root, root, root)
    return text[:-2] + ', "paths": ' + paths + "}}\n"


@contextlib.contextmanager
def formula(fleet, root, **pillar_kwargs):
    masters = [fleet.mom] + [syndic.master for syndic in fleet.syndics.values()]
    with contextlib.ExitStack() as stack:
        for name in FORMULA:
            with open(os.path.join(REPO_ROOT, "srv", "salt", name), encoding="utf-8") as handle:
                stack.enter_context(fleet.mom.state_tree.base.temp_file(name, handle.read()))
        files = []
        for master in masters:
            stack.enter_context(master.pillar_tree.base.temp_file("top.sls", "base:\n  '*':\n    - kiosk_formula\n"))
            files.append(stack.enter_context(
                master.pillar_tree.base.temp_file("kiosk_formula.sls", pillar_sls(fleet, root, **pillar_kwargs))))
        refresh(fleet)
        yield files
    refresh(fleet)


def refresh(fleet):
    ret = fleet.salt_cli(timeout=120).run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")
    assert ret.returncode == 0, ret


def apply(fleet, *args, tgt="*"):
    ret = fleet.salt_cli(timeout=240).run("state.apply", *args, minion_tgt=tgt)
    assert isinstance(ret.data, dict), ret
    # salt-factories unwraps the return of a single targeted minion.
    return ret.data if tgt == "*" else {tgt: ret.data}


def chunks(data):
    return {minion: list(states.values()) for minion, states in data.items()}


def test_formula_converges_every_role(fleet, fleet_inventory, tmp_path):
    root = str(tmp_path)
    try:
        with formula(fleet, root) as pillar_files:
            first = apply(fleet)
            assert sorted(first) == fleet.minion_ids, sorted(first)
            for minion, states in chunks(first).items():
                assert states and all(s["result"] is True for s in states), (minion, states)
            ids = {m: {s["__id__"] for s in states} for m, states in chunks(first).items()}
            assert {"kiosk-central-config", "kiosk-schema", "kiosk-rule-formula-late-clinic"} <= ids["central"]
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

            # A rule change in pillar reaches the plan.
            for path in pillar_files:
                path.write_text(pillar_sls(fleet, root, end="22:30"))
            refresh(fleet)
            third = apply(fleet, tgt="central")
            rule = third["central"]
            assert any(s["changes"] for s in rule.values() if s["__id__"] == "kiosk-rule-formula-late-clinic"), rule
            plan = fleet.salt_run_cli().run("kiosk_power.plan", "id:kiosk-e1", "since=2027-03-01",
                                            "until=2027-03-02").data
            ends = [t for t in plan["kiosk-e1"]["transitions"] if t["state"] == "off"]
            assert any("22:30" in t["at"] for t in ends), plan["kiosk-e1"]["transitions"]
    finally:
        fleet.salt_run_cli().run("kiosk_power.rule_remove", "formula-late-clinic")


@pytest.mark.parametrize("pillar, missing", [({"with_db": False}, "kiosk:db"),
                                             ({"with_timezone": False}, "kiosk:campuses:west:timezone")])
def test_missing_pillar_key_fails_naming_it_and_applies_nothing(fleet, tmp_path, pillar, missing):
    with formula(fleet, str(tmp_path), **pillar):
        ret = apply(fleet, tgt="central")
    states = list(ret["central"].values())
    assert len(states) == 1 and states[0]["result"] is False, states
    assert missing in states[0]["comment"]
    assert not os.path.exists(os.path.join(str(tmp_path), "central", "master.d"))
