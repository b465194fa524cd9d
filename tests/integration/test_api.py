"""
salt-api (rest_cherrypy) on the master of masters with the file eauth backend:
an operator allowed only @runner kiosk_power.* adds a rule and reads a plan over
HTTP with a token; requests without a token, and by a user without that right,
are refused.
"""

import pytest
import requests

from tests.integration.conftest import api_login as login

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def api(salt_api):
    return salt_api


def call(api, token, fun, *args, **kwargs):
    headers = {"Accept": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    return requests.post(
        api, headers=headers, json=[{"client": "runner", "fun": fun, "arg": list(args), "kwarg": kwargs}], timeout=60
    )


def test_operator_adds_a_rule_and_reads_a_plan_over_http(api, fleet, fleet_inventory):
    token = login(api, "kiosk-ops", "ops-secret")
    try:
        resp = call(
            api,
            token,
            "kiosk_power.rule_add",
            "api-weekend",
            state="off",
            days="sat,sun",
            start="00:00",
            end="24:00",
            target="group:pay",
            priority=20,
            valid_from="2027-03-01",
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["return"][0]["name"] == "api-weekend"
        resp = call(api, token, "kiosk_power.plan", "group:pay", since="2027-03-05", until="2027-03-08", timeline=True)
        plan = resp.json()["return"][0]
        assert set(plan) == {"kiosk-e1", "kiosk-w1"}
        assert plan["kiosk-w1"]["timeline"][-1]["rule"] == "api-weekend"
    finally:
        call(api, token, "kiosk_power.rule_remove", "api-weekend")


def test_requests_without_token_or_right_are_refused(api, fleet, fleet_inventory):
    resp = call(api, None, "kiosk_power.rule_list")
    assert resp.status_code == 401
    viewer = login(api, "viewer", "viewer-secret")
    resp = call(api, viewer, "kiosk_power.rule_add", "api-denied", state="on", days="mon", start="08:00", end="09:00")
    assert resp.status_code == 401
    assert "Authentication failure" in resp.text
    ops = login(api, "kiosk-ops", "ops-secret")
    names = [r["name"] for r in call(api, ops, "kiosk_power.rule_list").json()["return"][0]]
    assert "api-denied" not in names
    bad = requests.post(
        f"{api}/login", json={"username": "kiosk-ops", "password": "wrong", "eauth": "file"}, timeout=30
    )
    assert bad.status_code == 401
