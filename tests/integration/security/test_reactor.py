"""
Security issue 13, finding 2, on the real fleet: forged power alerts fired
from the real kiosk minion ``kiosk-e1`` (below relay-e1's syndic) into the real
reactor of the master of masters, which serves ``srv/salt`` and has the reactor
and both hooks in its config (tests/integration/conftest.py): mail through the
``central`` minion, and a stand-in ``zabbix_sender`` that logs its arguments
to ``fleet.zabbix_log``. Each yields only the normal reaction, with the event
text as data. The render tests are in tests/unit/security/test_reactor.py.
"""

import json
import os
import time
import uuid

import pytest

from tests.unit.security.test_reactor import as_text, hostile


def reactor_jobs(event_listener, fleet, started, nonce):
    """The reactor's runner and local jobs since ``started`` whose arguments carry ``nonce``."""
    runs = [
        e.data
        for e in event_listener.get_events([(fleet.mom.id, "salt/run/*/new")], after_time=started)
        if e.data.get("user") == "Reactor" and nonce in json.dumps(e.data)
    ]
    jobs = [
        e.data
        for e in event_listener.get_events([(fleet.mom.id, "salt/job/*/new")], after_time=started)
        if nonce in json.dumps(e.data)
    ]
    return runs, jobs


def wait_for_reaction(event_listener, fleet, started, nonce, count=3, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs, jobs = reactor_jobs(event_listener, fleet, started, nonce)
        if len(runs) + len(jobs) >= count:
            break
        time.sleep(0.5)
    time.sleep(3)  # anything more the reaction would do has happened by now
    return reactor_jobs(event_listener, fleet, started, nonce)


def zabbix_calls(fleet, nonce):
    if not os.path.exists(fleet.zabbix_log):
        return []
    with open(fleet.zabbix_log, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if nonce in line]


def assert_normal_reaction(fleet, runs, jobs, nonce, text, kiosk_text):
    by_fun = {run["fun_args"][0]["fun"]: run for run in runs}
    assert sorted(by_fun) == ["cmd.run", "log.warning"] and len(runs) == 2, runs
    assert by_fun["log.warning"]["fun"] == "runner.salt.cmd"
    assert by_fun["log.warning"]["fun_args"][0]["message"] == "KIOSK POWER ALERT " + text
    zabbix = fleet.mom.config["kiosk"]["alerts"]["zabbix_sender"]
    assert by_fun["cmd.run"]["fun_args"][0]["cmd"] == [
        zabbix["command"],
        "-z",
        zabbix["server"],
        "-s",
        zabbix["host"],
        "-k",
        zabbix["key"],
        "-o",
        text,
    ]
    assert len(jobs) == 1, jobs
    mail = jobs[0]
    assert (mail["fun"], mail["tgt"], mail["tgt_type"], mail["minions"]) == (
        "smtp.send_msg",
        ["central"],
        "list",
        ["central"],
    ), mail
    kwargs = mail["arg"][0]
    assert (kwargs["recipient"], kwargs["message"], kwargs["subject"]) == (
        "ops@hospital.example",
        text,
        f"Kiosk {kiosk_text} power state wrong",
    )
    # The stand-in zabbix_sender got the text as one argument.
    deadline = time.time() + 30
    while not zabbix_calls(fleet, nonce) and time.time() < deadline:
        time.sleep(0.5)
    assert zabbix_calls(fleet, nonce) == [
        ["-z", zabbix["server"], "-s", zabbix["host"], "-k", zabbix["key"], "-o", text]
    ]


def forge_alert(fleet, fields):
    """kiosk-e1 fires kiosk/alert/power/x to its relay; the syndic forwards it to the master of masters."""
    ret = fleet.kiosks["kiosk-e1"].salt_call_cli(timeout=60).run("event.send", "kiosk/alert/power/x", preload=fields)
    assert ret.returncode == 0 and ret.data is True, ret


@pytest.mark.fleet
def test_forged_alert_from_a_kiosk_yields_only_the_normal_reaction(fleet, event_listener, tmp_path):
    nonce = uuid.uuid4().hex
    marker = tmp_path / f"pwned-{nonce}"
    kiosk = hostile(marker)
    started = time.time()
    forge_alert(
        fleet,
        {
            "kiosk": kiosk,
            "campus": "east",
            "expected": "off",
            "observed": "on",
            "event": 7,
            "rule": "weekday-hours",
            "reason": f"forged {nonce}\nsecond line",
        },
    )
    runs, jobs = wait_for_reaction(event_listener, fleet, started, nonce)
    text = (
        f"kiosk {as_text(kiosk)} (east): expected off, observed on after power event 7 "
        f"(rule weekday-hours): forged {nonce} second line"
    )
    assert_normal_reaction(fleet, runs, jobs, nonce, text, as_text(kiosk))
    # Nothing else was published: no cmd.run and nothing on '*', and the payload's command never ran.
    published = [e.data for e in event_listener.get_events([(fleet.mom.id, "salt/job/*/new")], after_time=started)]
    assert not [j for j in published if j.get("fun") == "cmd.run" or j.get("tgt") == "*"], published
    assert not marker.exists()


@pytest.mark.fleet
def test_forged_alert_for_a_minion_id_with_quotes_still_alerts(fleet, event_listener):
    nonce = uuid.uuid4().hex
    kiosk = f'kiosk-"{nonce}"'
    started = time.time()
    forge_alert(
        fleet,
        {
            "kiosk": kiosk,
            "campus": "east",
            "expected": "on",
            "observed": "off",
            "event": 8,
            "rule": None,
            "reason": "no answer",
        },
    )
    runs, jobs = wait_for_reaction(event_listener, fleet, started, nonce)
    text = f"kiosk {kiosk} (east): expected on, observed off after power event 8 (rule None): no answer"
    assert_normal_reaction(fleet, runs, jobs, nonce, text, kiosk)


@pytest.mark.fleet
def test_alert_hooks_from_the_master_config_are_published(fleet, event_listener):
    # A genuine alert as the engine fires it: on the master's own bus.
    nonce = uuid.uuid4().hex
    started = time.time()
    alert = {
        "kiosk": "kiosk-e2",
        "code": "E02",
        "campus": "east",
        "expected": "off",
        "observed": "on",
        "event": 42,
        "action": "shutdown",
        "rule": "weekday-hours",
        "reason": f"10.1.0.12 answers ({nonce})",
    }
    ret = fleet.salt_run_cli().run("event.send", "kiosk/alert/power/kiosk-e2", data=alert)
    assert ret.returncode == 0, ret
    runs, jobs = wait_for_reaction(event_listener, fleet, started, nonce)
    text = (
        f"kiosk kiosk-e2 (east): expected off, observed on after power event 42 (rule weekday-hours): "
        f"10.1.0.12 answers ({nonce})"
    )
    assert_normal_reaction(fleet, runs, jobs, nonce, text, "kiosk-e2")
    # The mail job reached the central minion (which answers; smtp.send_msg needs its SMTP module there).
    jid = jobs[0]["jid"]
    deadline = time.time() + 30
    while time.time() < deadline:
        if event_listener.get_events([(fleet.mom.id, f"salt/job/{jid}/ret/central")], after_time=started):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"central never answered the mail job {jid}")
