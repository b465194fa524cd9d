"""
The example reactor SLS renders into the expected reactions for an alert event.
The hooks come from the master config (``kiosk:alerts``), as the reactor's
render on the master sees them; its pillar is empty.
"""

import os
import tempfile

import salt.config
import salt.utils.templates
import salt.utils.yaml

from tests.conftest import REPO_ROOT

SLS = os.path.join(REPO_ROOT, "srv", "salt", "reactor", "power_alert.sls")
ENV_SLS = os.path.join(REPO_ROOT, "srv", "salt", "reactor", "env_alert.sls")
ALERT = {
    "kiosk": "kiosk-e2",
    "code": "E02",
    "campus": "east",
    "expected": "off",
    "observed": "on",
    "event": 7,
    "action": "shutdown",
    "rule": "weekday-hours",
    "reason": "expected off, observed on: 10.1.0.12 answers",
}
HOOKS = {
    "mail": {"to": "ops@hospital.example", "minion": "central"},
    "zabbix_sender": {"server": "zbx", "host": "fleet", "key": "kiosk.alert"},
}


def render(
    alerts=None, pillar_alerts=None, sls=SLS, data=ALERT, tag="kiosk/alert/power/kiosk-e2", master_id="central_master"
):
    """Render like the reactor: master opts (with kiosk:alerts) and an empty pillar."""
    pillar = {"kiosk:alerts": pillar_alerts} if pillar_alerts is not None else {}
    opts = dict(salt.config.DEFAULT_MINION_OPTS, id=master_id, cachedir=tempfile.mkdtemp(), file_client="local")
    if alerts is not None:
        opts["kiosk"] = {"alerts": alerts}
    result = salt.utils.templates.JINJA(
        sls,
        to_str=True,
        data=data,
        opts=opts,
        saltenv="base",
        salt={"pillar.get": lambda key, default=None: pillar.get(key, default)},
        tag=tag,
    )
    assert result["result"], result
    return salt.utils.yaml.safe_load(result["data"])


def test_log_line_only_without_hooks():
    reactions = render()
    assert list(reactions) == ["kiosk-power-alert-log"]
    args = reactions["kiosk-power-alert-log"]["runner.salt.cmd"][0]["args"]
    assert args[0] == {"fun": "log.warning"}
    assert args[1]["message"].startswith("KIOSK POWER ALERT kiosk kiosk-e2 (east): expected off, observed on")
    assert "power event 7 (rule weekday-hours)" in args[1]["message"]


def test_mail_and_zabbix_hooks_from_master_config():
    reactions = render(HOOKS)
    assert set(reactions) == {"kiosk-power-alert-log", "kiosk-power-alert-mail", "kiosk-power-alert-zabbix"}
    mail = reactions["kiosk-power-alert-mail"]["local.smtp.send_msg"]
    assert {"tgt": ["central"]} in mail and {"tgt_type": "list"} in mail
    args = next(item["args"] for item in mail if "args" in item)
    assert args[0] == {"recipient": "ops@hospital.example"}
    assert args[1]["message"].startswith("kiosk kiosk-e2 (east): expected off, observed on")
    assert args[2:] == [{"subject": "Kiosk kiosk-e2 power state wrong"}, {"profile": "smtp"}]
    zabbix = reactions["kiosk-power-alert-zabbix"]["runner.salt.cmd"][0]["args"]
    assert zabbix[1]["cmd"][:7] == ["zabbix_sender", "-z", "zbx", "-s", "fleet", "-k", "kiosk.alert"]
    assert zabbix[1]["cmd"][7:] == ["-o", args[1]["message"]]
    assert zabbix[2] == {"python_shell": False}


def test_mail_minion_defaults_to_the_masters_own_minion_and_zabbix_command_can_be_set():
    reactions = render(
        {
            "mail": {"to": ["a@x.example", "b@x.example"], "profile": "alerts"},
            "zabbix_sender": {"server": "zbx", "host": "fleet", "key": "k", "command": "/opt/zbx/sender"},
        }
    )
    mail = reactions["kiosk-power-alert-mail"]["local.smtp.send_msg"]
    assert {"tgt": ["central"]} in mail  # "central_master" without "_master"
    args = next(item["args"] for item in mail if "args" in item)
    assert args[0] == {"recipient": "a@x.example,b@x.example"} and args[3] == {"profile": "alerts"}
    assert reactions["kiosk-power-alert-zabbix"]["runner.salt.cmd"][0]["args"][1]["cmd"][0] == "/opt/zbx/sender"


def test_hooks_in_pillar_alone_are_not_read():
    # The reactor's pillar is always empty on the master; the hooks live in the master config.
    assert list(render(pillar_alerts=HOOKS)) == ["kiosk-power-alert-log"]


def test_env_alert_log_line():
    reactions = render(
        sls=ENV_SLS,
        tag="salt/beacon/relay-e1/kiosk_env/alert/temperature",
        data={"sensor": "temperature", "state": "high", "value": 41.5, "limits": [5, 35]},
    )
    assert list(reactions) == ["kiosk-env-alert-log"]
    args = reactions["kiosk-env-alert-log"]["runner.salt.cmd"][0]["args"]
    assert args == [
        {"fun": "log.warning"},
        {"message": "KIOSK ENV ALERT relay relay-e1: temperature high (value 41.5, limits [5, 35])"},
    ]
