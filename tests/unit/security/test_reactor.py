"""
Security issue 13, finding 2: the power alert reactor wrote event data into
YAML unescaped, and its mail / Zabbix hooks were read from a pillar the
reactor never has.

Any minion can fire an event to its master, and syndics forward it: a kiosk's
``salt-call event.send 'kiosk/alert/power/x' preload='{"kiosk": ...}'`` puts
the fields at the top of the event data on the master of masters, exactly
where the engine's genuine alerts have them. The fleet tests in
tests/integration/security/test_reactor.py fire such forged alerts from the
real kiosk minion ``kiosk-e1`` into the real reactor of the master of masters.

The render tests here show the same with Salt's own renderer and state compiler,
for both reactor SLS files and the formula's templates (values from pillar and
grains).
"""

import os
import re
import tempfile

import salt.config
import salt.state
import salt.utils.templates
import salt.utils.yaml

from tests.conftest import REPO_ROOT

SRV_SALT = os.path.join(REPO_ROOT, "srv", "salt")
POWER_SLS = os.path.join(SRV_SALT, "reactor", "power_alert.sls")
ENV_SLS = os.path.join(SRV_SALT, "reactor", "env_alert.sls")
HOOKS = {
    "mail": {"to": "ops@hospital.example", "minion": "central"},
    "zabbix_sender": {"server": "zbx.example", "host": "kiosk-fleet", "key": "kiosk.power.alert"},
}
NORMAL = {"kiosk-power-alert-log", "kiosk-power-alert-mail", "kiosk-power-alert-zabbix"}


def hostile(marker):
    """A kiosk id that closes the quoted subject and adds a cmd.run on '*'."""
    return (
        f'kiosk-"x" \nkiosk-power-alert-evil:\n  local.cmd.run:\n    - tgt: "*"\n'
        f'    - arg: ["touch {marker}"]\n#\x80 {{{{ 7 * 7 }}}}'
    )


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
        sls,
        to_str=True,
        data=data,
        tag=tag,
        opts=opts,
        saltenv="base",
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
    data = {
        "kiosk": kiosk,
        "campus": "east\n- x",
        "expected": "off",
        "observed": {"a": "b"},
        "event": "7: 8",
        "rule": "'r'",
        "reason": "line one\nline two",
    }
    high, chunks = render(POWER_SLS, data, "kiosk/alert/power/x")
    assert set(high) == NORMAL
    assert sorted((c["state"], c["fun"]) for c in chunks) == [
        ("local", "smtp.send_msg"),
        ("runner", "salt.cmd"),
        ("runner", "salt.cmd"),
    ]
    text = (
        f"kiosk {as_text(kiosk)} (east - x): expected off, observed {{'a': 'b'}} after power event 7: 8 "
        f"(rule 'r'): line one line two"
    )
    assert reaction_args(high, "kiosk-power-alert-log") == {
        "fun": "log.warning",
        "message": "KIOSK POWER ALERT " + text,
    }
    mail = reaction_args(high, "kiosk-power-alert-mail")
    assert mail == {
        "recipient": "ops@hospital.example",
        "message": text,
        "subject": f"Kiosk {as_text(kiosk)} power state wrong",
        "profile": "smtp",
    }
    assert "\n" not in mail["subject"] and "\r" not in mail["subject"]  # no mail header of its own
    mail_chunk = next(c for c in chunks if c["state"] == "local")
    assert (mail_chunk["tgt"], mail_chunk["tgt_type"]) == (["central"], "list")
    zabbix = reaction_args(high, "kiosk-power-alert-zabbix")
    assert zabbix["cmd"] == [
        "zabbix_sender",
        "-z",
        "zbx.example",
        "-s",
        "kiosk-fleet",
        "-k",
        "kiosk.power.alert",
        "-o",
        text,
    ]
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
        os.path.join(SRV_SALT, *sls.split(".")) + ".sls",
        to_str=True,
        opts=opts,
        saltenv="base",
        sls=sls,
        salt={"pillar.get": pillar_get},
        grains=grains,
        pillar=pillar,
    )
    assert result["result"], result["data"]
    return salt.utils.yaml.safe_load(result["data"])


def test_formula_templates_quote_values_from_pillar_and_grains(tmp_path):
    evil = f'x"\nkiosk-evil:\n  cmd.run:\n    - name: touch {tmp_path}/pwned\n#'
    # A relay whose minion id (a grain) is hostile, with and without a complete pillar.
    pillar = {
        "kiosk": {
            "central_address": "127.0.0.1",
            "db": {"user": "kiosk_relay", "password_file": "/p"},
            "campuses": {"east": {"timezone": "UTC", "relays": [evil]}},
            "paths": {"master_d": evil, "minion_d": "/m", "release_root": "/r"},
        }
    }
    states = render_formula("kiosk.relay", pillar, {"id": evil, "fqdn_ip4": ["10.1.0.2"]})
    assert set(states) == {
        "kiosk-syndic-config",
        "kiosk-relay-minion-config",
        "kiosk-release-root",
        "kiosk-relay-packages",
    }
    assert {"name": evil + "/kiosk-syndic.conf"} in states["kiosk-syndic-config"]["file.serialize"]
    states = render_formula("kiosk.relay", {"kiosk": {}}, {"id": evil})
    assert list(states) == ["kiosk-pillar-incomplete"]
    assert evil in states["kiosk-pillar-incomplete"]["test.fail_without_changes"][1]["comment"]
    # Rule names, paths and values from the central pillar.
    pillar = {
        "kiosk": {
            "db": "sqlite:///x",
            "campuses": {"east": {"timezone": "UTC"}},
            "paths": {"master_d": evil},
            "rules": {evil: {"power": "on", "days": "mon", "start": "07:00", "end": "18:00", "target": evil}},
        }
    }
    states = render_formula("kiosk.central", pillar, {"id": "central"})
    assert set(states) == {"kiosk-central-config", "kiosk-schema", "kiosk-rule-" + evil}
    assert {"target": evil} in states["kiosk-rule-" + evil]["kiosk_power.rule_present"]
    # A kiosk whose minion id and fqdn (grains) are hostile.
    pillar = {"kiosk": {"zabbix": {"server": evil}, "freeipa": {"domain": evil, "otp": evil}}}
    states = render_formula("kiosk.kiosk", pillar, {"id": evil, "fqdn": evil})
    assert set(states) == {
        "kiosk-minion-config",
        "kiosk-release-dir",
        "kiosk-zabbix-agent",
        "kiosk-freeipa-enrol-helper",
        "kiosk-freeipa-enrolment",
    }
    zabbix = next(i["contents"] for i in states["kiosk-zabbix-agent"]["file.managed"] if "contents" in i)
    assert zabbix == f"Server={evil}\nServerActive={evil}\nHostname={evil}\n"
