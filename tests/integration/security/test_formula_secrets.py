"""
Security issue 13, finding 9: what the formula and its example pillar give
away, on the real fleet (the example pillar and eauth, compiled with Salt's
own pillar compiler, are in tests/unit/security/test_formula_secrets.py).

* The FreeIPA OTP went onto the ``ipa-client-install`` command line and into
  the state return; now it travels on stdin to a helper that runs the
  installer in its own process. Applied on the real kiosk ``kiosk-e1`` with a
  stand-in FreeIPA client that records what it got.
* ``file.serialize`` diffs of configs holding database settings showed inline
  passwords in state returns; now they are written with ``show_changes:
  False``. Applied on the real central and relay minions with a real MariaDB
  account whose password is inline in pillar.
"""

import contextlib
import json
import os
import sys
import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import _mysql_admin
from tests.integration.test_formula import formula, refresh


def stored_returns_containing(mysql_url, text):
    """Rows of the central job results (written by the relays' kiosk_mysql returners) holding ``text``."""
    engine = sa.create_engine(mysql_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT jid, minion_id FROM kiosk_returns WHERE ret LIKE :t"), {"t": f"%{text}%"}
            ).all()
    finally:
        engine.dispose()


def job_cache_files_containing(fleet, text):
    """Files of the masters' local job caches holding ``text``."""
    found = []
    for master in [fleet.mom] + [syndic.master for syndic in fleet.syndics.values()]:
        for folder, _dirs, names in os.walk(os.path.join(master.config["cachedir"], "jobs")):
            for name in names:
                with open(os.path.join(folder, name), "rb") as handle:
                    if text.encode() in handle.read():
                        found.append(os.path.join(folder, name))
    return found


def fake_freeipa_client(root):
    """
    A stand-in platform python whose ``ipaclient`` records the installer's
    in-process arguments and the command lines of its process and parent.
    """
    record = os.path.join(root, "ipa-client-install.json")
    package = os.path.join(root, "fake-ipaclient", "ipaclient", "install")
    os.makedirs(package)
    for folder in (os.path.dirname(package), package):
        with open(os.path.join(folder, "__init__.py"), "w", encoding="utf-8"):
            pass
    with open(os.path.join(package, "ipa_client_install.py"), "w", encoding="utf-8") as handle:
        handle.write(
            "import json, os, sys\n\n"
            "def cmdline(pid):\n"
            "    with open(f'/proc/{pid}/cmdline', 'rb') as f:\n"
            "        return [a.decode() for a in f.read().split(b'\\0') if a]\n\n"
            "def run():\n"
            f"    with open({record!r}, 'w') as f:\n"
            "        json.dump({'argv': sys.argv, 'cmdline': cmdline('self'), 'parent': cmdline(os.getppid())}, f)\n"
            "    sys.exit(0)\n"
        )
    python = os.path.join(root, "platform-python")
    with open(python, "w", encoding="utf-8") as handle:
        handle.write(
            f'#!/bin/sh\n[ "$1" = "-I" ] && shift\n'
            f'PYTHONPATH={os.path.dirname(os.path.dirname(package))} exec {sys.executable} "$@"\n'
        )
    os.chmod(python, 0o755)
    return python, record


ENROL_TOP = """base:
  kiosk-e1,kiosk-e2:
    - match: list
    - kiosk_paths
    - kiosk_ipa
  kiosk-e1:
    - match: list
    - kiosk_enrol_kiosk_e1
"""


@pytest.mark.fleet
def test_freeipa_otp_travels_on_stdin_and_stays_out_of_every_return(fleet, mysql_url, tmp_path):
    root = str(tmp_path)
    otp = "OTP-" + uuid.uuid4().hex
    python, record = fake_freeipa_client(root)
    paths = (
        '{"kiosk": {"paths": {"minion_d": "%s/{{ opts[\'id\'] }}/minion.d", '
        '"release_dir": "%s/{{ opts[\'id\'] }}/releases", "sbin": "%s/{{ opts[\'id\'] }}/sbin"}}}\n'
        % (root, root, root)
    )
    ipa = {"kiosk": {"freeipa": {"domain": "hospital.example", "server": "ipa.hospital.example", "python": python}}}
    relay = fleet.syndics["relay-e1"].master
    with contextlib.ExitStack() as stack:
        for name, text in (
            ("top.sls", ENROL_TOP),
            ("kiosk_paths.sls", paths),
            ("kiosk_ipa.sls", json.dumps(ipa)),
            ("kiosk_enrol_kiosk_e1.sls", json.dumps({"kiosk": {"freeipa": {"otp": otp}}})),
        ):
            stack.enter_context(relay.pillar_tree.base.temp_file(name, text))
        refresh(fleet)
        try:
            # The one-time password reaches kiosk-e1 only.
            e2 = fleet.salt_cli().run("pillar.item", "kiosk", minion_tgt="kiosk-e2").data["kiosk"]
            assert "otp" not in e2["freeipa"], e2
            fqdn = fleet.salt_cli().run("grains.get", "fqdn", minion_tgt="kiosk-e1").data

            dry = fleet.salt_cli(timeout=240).run("state.apply", "kiosk.kiosk", "test=True", minion_tgt="kiosk-e1")
            assert isinstance(dry.data, dict), dry
            enrol = next(s for s in dry.data.values() if s["__id__"] == "kiosk-freeipa-enrolment")
            assert enrol["result"] is None, enrol
            assert otp not in dry.stdout
            assert not os.path.exists(record)

            ret = fleet.salt_cli(timeout=240).run("state.apply", "kiosk.kiosk", minion_tgt="kiosk-e1")
            assert isinstance(ret.data, dict), ret
            assert all(s["result"] is True for s in ret.data.values()), ret.data
            enrol = next(s for s in ret.data.values() if s["__id__"] == "kiosk-freeipa-enrolment")
            assert (enrol["changes"]["stdout"], enrol["changes"]["stderr"]) == ("", ""), enrol  # hide_output
            assert otp not in ret.stdout

            # The installer got the OTP in its own process only: never on a command line.
            with open(record, encoding="utf-8") as handle:
                seen = json.load(handle)
            assert seen["argv"] == [
                "ipa-client-install",
                "--unattended",
                "--domain",
                "hospital.example",
                "--server",
                "ipa.hospital.example",
                "--hostname",
                fqdn,
                "--password",
                otp,
            ]
            assert not [arg for arg in seen["cmdline"] + seen["parent"] if otp in arg], seen
            assert seen["cmdline"][1:3] == [os.path.join(root, "kiosk-e1", "sbin", "kiosk-ipa-enrol"), "--domain"]

            # kiosk-e2 (no OTP in its pillar) has no enrolment at all.
            e2_states = (
                fleet.salt_cli(timeout=240).run("state.apply", "kiosk.kiosk", "test=True", minion_tgt="kiosk-e2").data
            )
            assert "kiosk-freeipa-enrolment" not in {s["__id__"] for s in e2_states.values()}, e2_states

            # No stored job return holds it (the central job results, the masters' job caches),
            # and neither the kiosk's log nor its relay master's log mentions it.
            assert stored_returns_containing(mysql_url, otp) == []
            assert job_cache_files_containing(fleet, otp) == []
            for daemon in (fleet.kiosks["kiosk-e1"], relay):
                log_file = os.path.join(daemon.config["root_dir"], daemon.config["log_file"])
                with open(log_file, encoding="utf-8", errors="replace") as handle:
                    assert otp not in handle.read(), log_file
        finally:
            if os.path.exists(record):
                os.unlink(record)
    refresh(fleet)


@pytest.fixture
def db_account(mysql_url):
    """A MariaDB account with a password, on the session database; dropped afterwards."""
    url = sa.engine.make_url(mysql_url)
    user = "ksec_" + uuid.uuid4().hex[:10]
    _mysql_admin(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'initial-{uuid.uuid4().hex}'")
    _mysql_admin(f"GRANT ALL PRIVILEGES ON `{url.database}`.* TO '{user}'@'%'")

    def set_password(password):
        _mysql_admin(f"ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'")
        return {
            "host": url.host,
            "port": url.port or 3306,
            "user": user,
            "password": password,
            "database": url.database,
            "query": {"charset": "utf8mb4"},
        }

    try:
        yield set_password
    finally:
        _mysql_admin(f"DROP USER IF EXISTS '{user}'@'%'")


@pytest.mark.fleet
def test_no_state_return_shows_an_inline_database_password(fleet, fleet_inventory, mysql_url, db_account, tmp_path):
    root = str(tmp_path)
    secrets = ["Pw1-" + uuid.uuid4().hex, "Pw2-" + uuid.uuid4().hex, "Pw3-" + uuid.uuid4().hex]
    outputs = []
    try:
        for step, secret in enumerate(secrets):
            db = db_account(secret)
            relay_db = dict(db, user="kiosk_relay")
            with formula(fleet, root, central_db=db, relay_db=relay_db):
                # First run writes the configs, the second changes the password in them, the third is a dry run.
                args = ("test=True",) if step == 2 else ()
                for tgt, sls in (("central", "kiosk.central"), ("relay-w1", "kiosk.relay")):
                    ret = fleet.salt_cli(timeout=240).run("state.apply", sls, *args, minion_tgt=tgt)
                    assert isinstance(ret.data, dict), ret
                    outputs.append(ret.stdout)
                    config = next(
                        s for s in ret.data.values() if s["__id__"] in ("kiosk-central-config", "kiosk-syndic-config")
                    )
                    assert config["result"] is (None if step == 2 else True), config
                    assert config["changes"], config  # the file did change: the return just does not show how
                    if tgt == "central":
                        schema = next(s for s in ret.data.values() if s["__id__"] == "kiosk-schema")
                        assert schema["result"] is True, schema  # the inline password works
            for earlier in secrets[: step + 1]:
                assert not [out for out in outputs if earlier in out]
        with open(os.path.join(root, "central", "master.d", "kiosk.conf"), encoding="utf-8") as handle:
            assert secrets[1] in handle.read()  # the config itself has it (mode 0640)
        for secret in secrets:
            assert stored_returns_containing(mysql_url, secret) == []
            assert job_cache_files_containing(fleet, secret) == []
    finally:
        fleet.salt_run_cli().run("kiosk_power.rule_remove", "formula-late-clinic")
