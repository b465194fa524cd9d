"""
Security issue 13, finding 2: the power alert reactor wrote event data into
YAML unescaped, and its mail / Zabbix hooks were read from a pillar the
reactor never has.

Any minion can fire an event to its master, and syndics forward it: a kiosk's
``salt-call event.send 'kiosk/alert/power/x' preload='{"kiosk": ...}'`` puts
the fields at the top of the event data on the master of masters, exactly
where the engine's genuine alerts have them. The fleet tests below fire such
forged alerts from the real kiosk minion ``kiosk-e1`` (below relay-e1's
syndic) into the real reactor of the master of masters, which serves
``srv/salt`` and has the reactor and both hooks in its config
(tests/conftest.py): mail through the ``central`` minion, and a stand-in
``zabbix_sender`` that logs its arguments to ``fleet.zabbix_log``.

The render tests show the same with Salt's own renderer and state compiler,
for both reactor SLS files and the formula's templates (values from pillar and
grains).
"""

import json
import os
import re
import tempfile
import time
import uuid

import pytest
import salt.config
import salt.state
import salt.utils.templates
import salt.utils.yaml

from tests.conftest import REPO_ROOT

SRV_SALT = os.path.join(REPO_ROOT, "srv", "salt")
POWER_SLS = os.path.join(SRV_SALT, "reactor", "power_alert.sls")
ENV_SLS = os.path.join(SRV_SALT, "reactor", "env_alert.sls")
HOOKS = {"mail": {"to": "ops@hospital.example", "minion": "central"},
         "zabbix_sender": {"server": "zbx.example", "host": "kiosk-fleet", "key": "kiosk.power.alert"}}
NORMAL = {"kiosk-power-alert-log", "kiosk-power-alert-mail", "kiosk-power-alert-zabbix"}


def hostile(marker):
    """A kiosk id that closes the quoted subject and adds a cmd.run on '*'."""
    return (f'kiosk-"x" \nkiosk-power-alert-evil:\n  local.cmd.run:\n    - tgt: "*"\n'
            f'    - arg: ["touch {marker}"]\n#\x80 {{{{ 7 * 7 }}}}')


def as_text(value):
    """What the reaction must carry: the value, its control characters as spaces (at most 200)."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", value)[:200]


# --- Salt's renderer and state compiler, no daemons ------------------------------------------


def render(sls, data, tag, alerts=HOOKS):
    """
    Render a reactor SLS as the master's reactor does (master opts holding
    kiosk:alerts, empty pillar) and compile it with Salt's state compiler.
    The pillar stub offers the same hooks, so a template that still read them
    from pillar would render its hooks too.
    """
    opts = salt.config.minion_config(None)
    opts.update(id="mom_master", cachedir=tempfile.mkdtemp(), file_client="local", kiosk={"alerts": alerts})
    pillar = {"kiosk:alerts": alerts}
    result = salt.utils.templates.JINJA(
        sls, to_str=True, data=data, tag=tag, opts=opts, saltenv="base",
        salt={"pillar.get": lambda key, default=None: pillar.get(key, default)},
    )
    assert result["result"], result["data"]
    high = salt.utils.yaml.safe_load(result["data"])
    compiler = salt.state.Compiler(opts, {})
    high = compiler.pad_funcs(high)
    for name in high:
        high[name]["__sls__"] = sls
        high[name]["__env__"] = "base"
    assert compiler.verify_high(high) == []
    chunks, errors = compiler.compile_high_data(high)
    assert errors == []
    return high, chunks


def reaction_args(high, name):
    body = high[name]
    items = next(iter(body.values()))
    args = next(item["args"] for item in items if isinstance(item, dict) and "args" in item)
    return {k: v for item in args for k, v in item.items()}


def test_hostile_power_alert_renders_the_normal_reaction_with_the_text_as_data(tmp_path):
    marker = tmp_path / "pwned"
    kiosk = hostile(marker)
    data = {"kiosk": kiosk, "campus": "east\n- x", "expected": "off", "observed": {"a": "b"}, "event": "7: 8",
            "rule": "'r'", "reason": "line one\nline two"}
    high, chunks = render(POWER_SLS, data, "kiosk/alert/power/x")
    assert set(high) == NORMAL
    assert sorted((c["state"], c["fun"]) for c in chunks) == [
        ("local", "smtp.send_msg"), ("runner", "salt.cmd"), ("runner", "salt.cmd")]
    text = (f"kiosk {as_text(kiosk)} (east - x): expected off, observed {{'a': 'b'}} after power event 7: 8 "
            f"(rule 'r'): line one line two")
    assert reaction_args(high, "kiosk-power-alert-log") == {"fun": "log.warning", "message": "KIOSK POWER ALERT " + text}
    mail = reaction_args(high, "kiosk-power-alert-mail")
    assert mail == {"recipient": "ops@hospital.example", "message": text,
                    "subject": f"Kiosk {as_text(kiosk)} power state wrong", "profile": "smtp"}
    assert "\n" not in mail["subject"] and "\r" not in mail["subject"]  # no mail header of its own
    mail_chunk = next(c for c in chunks if c["state"] == "local")
    assert (mail_chunk["tgt"], mail_chunk["tgt_type"]) == (["central"], "list")
    zabbix = reaction_args(high, "kiosk-power-alert-zabbix")
    assert zabbix["cmd"] == ["zabbix_sender", "-z", "zbx.example", "-s", "kiosk-fleet", "-k", "kiosk.power.alert",
                             "-o", text]
    assert zabbix["python_shell"] is False


def test_minion_id_with_quotes_or_non_printable_text_still_alerts():
    for kiosk in ('kiosk-"e9"', "kiosk-e9\x85\u2028\x00", "kiosk-" + "e" * 500):
        high, _chunks = render(POWER_SLS, {"kiosk": kiosk, "campus": "east"}, "kiosk/alert/power/x")
        assert set(high) == NORMAL
        subject = reaction_args(high, "kiosk-power-alert-mail")["subject"]
        assert subject == f"Kiosk {re.sub(r'[^ -~]', ' ', kiosk)[:200]} power state wrong", subject


def test_hostile_env_alert_renders_one_log_line(tmp_path):
    marker = tmp_path / "pwned"
    tag = 'salt/beacon/relay-"e1\n/kiosk_env/alert/smoke'
    high, chunks = render(ENV_SLS, {"sensor": hostile(marker), "state": "high\x80", "value": [1], "limits": None}, tag)
    assert list(high) == ["kiosk-env-alert-log"] and len(chunks) == 1
    message = reaction_args(high, "kiosk-env-alert-log")["message"]
    assert message == f'KIOSK ENV ALERT relay relay-"e1 : {as_text(hostile(marker))} high  (value [1], limits None)'


def test_every_template_expression_in_the_reactors_is_a_quoted_scalar():
    for path in (POWER_SLS, ENV_SLS):
        with open(path, encoding="utf-8") as handle:
            expressions = re.findall(r"\{\{(.*?)\}\}", handle.read(), re.S)
        assert expressions
        for expression in expressions:
            assert re.search(r"\|\s*tojson\s*$", expression.strip()), (path, expression)


def render_formula(sls, pillar, grains):
    """Render a formula SLS with Salt's renderer, map.jinja imported from srv/salt."""
    opts = salt.config.minion_config(None)
    opts.update(id=grains["id"], cachedir=tempfile.mkdtemp(), file_client="local", file_roots={"base": [SRV_SALT]})

    def pillar_get(key, default=None):
        value = pillar
        for part in key.split(":"):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value

    result = salt.utils.templates.JINJA(
        os.path.join(SRV_SALT, *sls.split(".")) + ".sls", to_str=True, opts=opts, saltenv="base", sls=sls,
        salt={"pillar.get": pillar_get}, grains=grains, pillar=pillar,
    )
    assert result["result"], result["data"]
    return salt.utils.yaml.safe_load(result["data"])


def test_formula_templates_quote_values_from_pillar_and_grains(tmp_path):
    evil = f'x"\nkiosk-evil:\n  cmd.run:\n    - name: touch {tmp_path}/pwned\n#'
    # A relay whose minion id (a grain) is hostile, with and without a complete pillar.
    pillar = {"kiosk": {"central_address": "127.0.0.1", "db": {"user": "kiosk_relay", "password_file": "/p"},
                        "campuses": {"east": {"timezone": "UTC", "relays": [evil]}},
                        "paths": {"master_d": evil, "minion_d": "/m", "release_root": "/r"}}}
    states = render_formula("kiosk.relay", pillar, {"id": evil, "fqdn_ip4": ["10.1.0.2"]})
    assert set(states) == {"kiosk-syndic-config", "kiosk-relay-minion-config", "kiosk-release-root",
                           "kiosk-relay-packages"}
    assert {"name": evil + "/kiosk-syndic.conf"} in states["kiosk-syndic-config"]["file.serialize"]
    states = render_formula("kiosk.relay", {"kiosk": {}}, {"id": evil})
    assert list(states) == ["kiosk-pillar-incomplete"]
    assert evil in states["kiosk-pillar-incomplete"]["test.fail_without_changes"][1]["comment"]
    # Rule names, paths and values from the central pillar.
    pillar = {"kiosk": {"db": "sqlite:///x", "campuses": {"east": {"timezone": "UTC"}},
                        "paths": {"master_d": evil},
                        "rules": {evil: {"power": "on", "days": "mon", "start": "07:00", "end": "18:00",
                                         "target": evil}}}}
    states = render_formula("kiosk.central", pillar, {"id": "central"})
    assert set(states) == {"kiosk-central-config", "kiosk-schema", "kiosk-rule-" + evil}
    assert {"target": evil} in states["kiosk-rule-" + evil]["kiosk_power.rule_present"]
    # A kiosk whose minion id and fqdn (grains) are hostile.
    pillar = {"kiosk": {"zabbix": {"server": evil}, "freeipa": {"domain": evil, "otp": evil}}}
    states = render_formula("kiosk.kiosk", pillar, {"id": evil, "fqdn": evil})
    assert set(states) == {"kiosk-minion-config", "kiosk-release-dir", "kiosk-zabbix-agent",
                           "kiosk-freeipa-enrol-helper", "kiosk-freeipa-enrolment"}
    zabbix = next(i["contents"] for i in states["kiosk-zabbix-agent"]["file.managed"] if "contents" in i)
    assert zabbix == f"Server={evil}\nServerActive={evil}\nHostname={evil}\n"


# --- the real fleet: a forged alert from a kiosk minion, the master of masters' reactor --------


def reactor_jobs(event_listener, fleet, started, nonce):
    """The reactor's runner and local jobs since ``started`` whose arguments carry ``nonce``."""
    runs = [e.data for e in event_listener.get_events([(fleet.mom.id, "salt/run/*/new")], after_time=started)
            if e.data.get("user") == "Reactor" and nonce in json.dumps(e.data)]
    jobs = [e.data for e in event_listener.get_events([(fleet.mom.id, "salt/job/*/new")], after_time=started)
            if nonce in json.dumps(e.data)]
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
        zabbix["command"], "-z", zabbix["server"], "-s", zabbix["host"], "-k", zabbix["key"], "-o", text]
    assert len(jobs) == 1, jobs
    mail = jobs[0]
    assert (mail["fun"], mail["tgt"], mail["tgt_type"], mail["minions"]) == (
        "smtp.send_msg", ["central"], "list", ["central"]), mail
    kwargs = mail["arg"][0]
    assert (kwargs["recipient"], kwargs["message"], kwargs["subject"]) == (
        "ops@hospital.example", text, f"Kiosk {kiosk_text} power state wrong")
    # The stand-in zabbix_sender got the text as one argument.
    deadline = time.time() + 30
    while not zabbix_calls(fleet, nonce) and time.time() < deadline:
        time.sleep(0.5)
    assert zabbix_calls(fleet, nonce) == [["-z", zabbix["server"], "-s", zabbix["host"], "-k", zabbix["key"],
                                           "-o", text]]


def forge_alert(fleet, fields):
    """kiosk-e1 fires kiosk/alert/power/x to its relay; the syndic forwards it to the master of masters."""
    ret = fleet.kiosks["kiosk-e1"].salt_call_cli(timeout=60).run(
        "event.send", "kiosk/alert/power/x", preload=fields)
    assert ret.returncode == 0 and ret.data is True, ret


@pytest.mark.fleet
def test_forged_alert_from_a_kiosk_yields_only_the_normal_reaction(fleet, event_listener, tmp_path):
    nonce = uuid.uuid4().hex
    marker = tmp_path / f"pwned-{nonce}"
    kiosk = hostile(marker)
    started = time.time()
    forge_alert(fleet, {"kiosk": kiosk, "campus": "east", "expected": "off", "observed": "on", "event": 7,
                        "rule": "weekday-hours", "reason": f"forged {nonce}\nsecond line"})
    runs, jobs = wait_for_reaction(event_listener, fleet, started, nonce)
    text = (f"kiosk {as_text(kiosk)} (east): expected off, observed on after power event 7 "
            f"(rule weekday-hours): forged {nonce} second line")
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
    forge_alert(fleet, {"kiosk": kiosk, "campus": "east", "expected": "on", "observed": "off", "event": 8,
                        "rule": None, "reason": "no answer"})
    runs, jobs = wait_for_reaction(event_listener, fleet, started, nonce)
    text = f"kiosk {kiosk} (east): expected on, observed off after power event 8 (rule None): no answer"
    assert_normal_reaction(fleet, runs, jobs, nonce, text, kiosk)


@pytest.mark.fleet
def test_alert_hooks_from_the_master_config_are_published(fleet, event_listener):
    # A genuine alert as the engine fires it: on the master's own bus.
    nonce = uuid.uuid4().hex
    started = time.time()
    alert = {"kiosk": "kiosk-e2", "code": "E02", "campus": "east", "expected": "off", "observed": "on",
             "event": 42, "action": "shutdown", "rule": "weekday-hours", "reason": f"10.1.0.12 answers ({nonce})"}
    ret = fleet.salt_run_cli().run("event.send", "kiosk/alert/power/kiosk-e2", data=alert)
    assert ret.returncode == 0, ret
    runs, jobs = wait_for_reaction(event_listener, fleet, started, nonce)
    text = (f"kiosk kiosk-e2 (east): expected off, observed on after power event 42 (rule weekday-hours): "
            f"10.1.0.12 answers ({nonce})")
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
