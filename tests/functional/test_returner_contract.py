"""
The ``kiosk_mysql`` returner under a real salt-minion: startup states of a
masterless minion with ``ext_job_cache: kiosk_mysql``, booted twice, each get
a fresh jid and a job load (the loader-level contract is in
tests/unit/test_returner_contract.py, whose ``dbs`` fixture this uses).
"""

import getpass
import os
import subprocess
import sys
import time

import salt.utils.jid

from tests.unit import test_returner_contract as contract
from tests.unit.test_returner_contract import rows

dbs = contract.dbs  # the fixture: two embedded databases, the default one and a profile's


def test_startup_states_of_two_boots_are_both_kept(tmp_path, dbs):
    """The real path: a masterless salt-minion's startup states, ``ext_job_cache: kiosk_mysql``, booted twice."""
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "boot.sls").write_text("boot:\n  test.succeed_without_changes\n")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "minion").write_text(
        f"id: kiosk-e1\nuser: {getpass.getuser()}\nroot_dir: {tmp_path / 'root'}\nfile_client: local\n"
        f"master_type: disable\nfile_roots: {{base: [{tmp_path / 'srv'}]}}\nstartup_states: sls\nsls_list: [boot]\n"
        f"ext_job_cache: kiosk_mysql\nkiosk_mysql: {{db: '{dbs['default']}'}}\n"
    )
    minion = os.path.join(os.path.dirname(sys.executable), "salt-minion")
    for boot in (1, 2):
        proc = subprocess.Popen([minion, "-c", str(conf), "-l", "quiet"])
        try:
            deadline = time.monotonic() + 90
            while len(rows(dbs["default"])) < boot and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    stored = rows(dbs["default"])
    assert [(r["minion_id"], r["fun"]) for r in stored] == [("kiosk-e1", "state.sls")] * 2
    assert len({r["jid"] for r in stored}) == 2 and all(salt.utils.jid.is_jid(r["jid"]) for r in stored)
    assert sorted(r["jid"] for r in rows(dbs["default"], "kiosk_jobs")) == sorted(r["jid"] for r in stored)
