"""
Finding 1: ``kiosk_jobs.run`` published any function to any minion for a
salt-api user granted only ``kiosk_jobs.*``. Now the caller's own publish
rights (Salt's external_auth ACL) decide, through a real salt-api with the
``file`` eauth backend on the fleet's master of masters.

The fleet's ``jobs-ops`` user holds ``@runner: kiosk_jobs.*`` and may publish
``test.ping`` / ``test.echo`` to ``kiosk-*`` only.
"""

import json
import time

import pytest
import requests

from tests.integration.conftest import api_login as login

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def api(salt_api):
    return salt_api


def run_job(api, token, *args, **kwargs):
    resp = requests.post(
        api,
        headers={"Accept": "application/json", "X-Auth-Token": token},
        json=[{"client": "runner", "fun": "kiosk_jobs.run", "arg": list(args), "kwarg": kwargs}],
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["return"][0]


def recent_funs(fleet):
    return [t["fun"] for t in fleet.salt_run_cli().run("kiosk_jobs.status").data]


def test_a_jobs_user_cannot_publish_cmd_run_through_kiosk_jobs(api, fleet, fleet_inventory, tmp_path):
    marker = tmp_path / "owned-by-jobs-ops"
    token = login(api, "jobs-ops", "jobs-secret")
    before = recent_funs(fleet).count("cmd.run")
    answer = run_job(api, token, ["kiosk-e1"], "cmd.run", arg=[f"touch {marker}"], wait=True)
    text = json.dumps(answer)
    assert "may not run 'cmd.run'" in text and "jobs-ops" in text, answer
    # The same refusal for every target, '*' included.
    answer = run_job(api, token, "*", "cmd.run", arg=[f"touch {marker}"], wait=True)
    assert "may not run 'cmd.run'" in json.dumps(answer), answer
    time.sleep(3)
    assert not marker.exists()
    assert recent_funs(fleet).count("cmd.run") == before  # no task was recorded


def test_a_jobs_user_cannot_reach_minions_outside_its_acl(api, fleet, fleet_inventory):
    token = login(api, "jobs-ops", "jobs-secret")
    # Not in the inventory: refused unless allowed ...
    answer = run_job(api, token, ["central"], "test.ping", wait=True)
    assert "not kiosks of the inventory: 'central'" in json.dumps(answer), answer
    # ... and when allowed, the ACL (kiosk-* only) still refuses the master's own minion.
    answer = run_job(api, token, ["central"], "test.ping", allow_unknown=True, wait=True)
    assert "may not run 'test.ping'" in json.dumps(answer) and "central" in json.dumps(answer), answer


def test_a_jobs_user_runs_what_its_acl_allows(api, fleet, fleet_inventory):
    token = login(api, "jobs-ops", "jobs-secret")
    task = run_job(api, token, "campus:east", "test.echo", arg=["allowed"], unit=1, wait=True)
    assert task["counts"]["success"] == 2, task
    assert {r["return"] for r in task["results"].values()} == {"allowed"}


def test_root_on_the_cli_keeps_every_right(fleet, fleet_inventory, tmp_path):
    marker = tmp_path / "root-may"
    ret = fleet.salt_run_cli().run("kiosk_jobs.run", "kiosk-e1", "cmd.run", f"arg=[touch {marker}]", "wait=True")
    assert ret.returncode == 0 and ret.data["counts"]["success"] == 1, ret
    assert marker.exists()
