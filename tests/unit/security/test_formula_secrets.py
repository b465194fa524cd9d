"""
Security issue 13, finding 9: what the formula and its example pillar give away.

* The example pillar gave the whole ``kiosk`` pillar (database, salt-api and
  eauth, FreeIPA OTP) to every minion; now it is split by role and targeted by
  minion id (grains are the minion's own claim). Compiled here with Salt's own
  pillar compiler from ``srv/pillar``.
* The example eauth granted ``@runner`` (every runner, ``salt.cmd`` included:
  root on the master); now named runner functions only. Checked with Salt's own
  ACL check (``CkMinions.runner_check``).

The FreeIPA OTP and the inline database passwords, applied on the real fleet,
are in tests/integration/security/test_formula_secrets.py.
"""

import os
import tempfile

import salt.config
import salt.pillar
import salt.utils.minions

from tests.conftest import REPO_ROOT

SRV_PILLAR = os.path.join(REPO_ROOT, "srv", "pillar")
SECRET_KEYS = ("db", "api", "freeipa", "alerts", "rules")


def compile_pillar(minion_id, grains):
    """The example pillar of ``minion_id``, compiled by Salt as a master does."""
    opts = salt.config.master_config(None)
    cache = tempfile.mkdtemp()
    opts.update(
        pillar_roots={"base": [SRV_PILLAR]},
        file_roots={"base": [cache]},
        cachedir=cache,
        file_client="local",
        ext_pillar=[],
    )
    pillar = salt.pillar.Pillar(opts, dict(grains), minion_id, "base").compile_pillar()
    assert "_errors" not in pillar, pillar
    return pillar


def test_example_pillar_is_split_by_minion_id_not_by_grains():
    # Every node claims the central role through its grains; only its id counts.
    claim = {"id": "central", "kiosk": {"role": "central"}}
    kiosk = compile_pillar("kiosk-e1", claim).get("kiosk", {})
    assert not [key for key in SECRET_KEYS if key in kiosk], kiosk
    relay = compile_pillar("relay-e1", claim)["kiosk"]
    assert relay["db"]["user"] == "kiosk_relay" and relay["db"]["password_file"] == "/etc/salt/kiosk-relay-db.secret"
    assert "password" not in relay["db"]
    assert not [key for key in ("api", "freeipa", "alerts", "rules") if key in relay], relay
    central = compile_pillar("central", {"id": "central"})["kiosk"]
    assert central["db"]["user"] == "kiosk" and central["db"]["password_file"] == "/etc/salt/kiosk-db.secret"
    assert central["api"]["external_auth"]
    assert compile_pillar("intruder", claim) == {}


def test_example_eauth_grants_named_runner_functions_only():
    eauth = compile_pillar("central", {"id": "central"})["kiosk"]["api"]["external_auth"]
    ckminions = salt.utils.minions.CkMinions(salt.config.master_config(None))
    users = {user: acl for backend in eauth.values() for user, acl in backend.items() if not user.startswith("^")}
    assert users
    for user, acl in users.items():
        for entry in acl:
            assert isinstance(entry, dict), (user, entry)  # a bare "@runner" / "@wheel" / ".*" grants everything
            for functions in (v for k, v in entry.items() if k.startswith("@")):
                assert all("*" not in f and "." in f and f.startswith("kiosk_") for f in functions), (user, entry)
        for fun in (
            "salt.cmd",
            "state.orchestrate",
            "cmd.run",
            "jobs.list_jobs",
            "kiosk_release.publish",
            "kiosk_inventory.import_csv",
            "kiosk_vnc.tokens",
        ):
            assert not ckminions.runner_check(acl, fun, {}), (user, fun)
        assert not ckminions.wheel_check(acl, "key.accept", {}), user
        assert ckminions.runner_check(acl, "kiosk_power.plan", {}), user
        assert ckminions.runner_check(acl, "kiosk_inventory.fleet", {}), user
        assert ckminions.runner_check(acl, "kiosk_env.series", {}), user
    viewer, ops = users["kiosk-viewer"], users["kiosk-ops"]
    assert not ckminions.runner_check(viewer, "kiosk_power.wake", {})
    assert not ckminions.runner_check(viewer, "kiosk_jobs.run", {})
    assert ckminions.runner_check(ops, "kiosk_power.wake", {})
    assert ckminions.runner_check(ops, "kiosk_jobs.run", {})
