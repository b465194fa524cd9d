"""
The example reactor SLS renders into the expected reactions for an alert event.
"""

import os
import tempfile

import salt.config
import salt.utils.templates
import salt.utils.yaml

from tests.conftest import REPO_ROOT

SLS = os.path.join(REPO_ROOT, "srv", "salt", "reactor", "power_alert.sls")
ALERT = {
    "kiosk": "kiosk-e2", "code": "E02", "campus": "east", "expected": "off", "observed": "on", "event": 7,
    "action": "shutdown", "rule": "weekday-hours", "reason": "expected off, observed on: 10.1.0.12 answers",
}


def render(alerts_pillar):
    pillar = {"kiosk:alerts": alerts_pillar}
    opts = dict(salt.config.DEFAULT_MINION_OPTS, id="central", cachedir=tempfile.mkdtemp(), file_client="local")
    result = salt.utils.templates.JINJA(
        SLS, to_str=True, data=ALERT, opts=opts, saltenv="base",
        salt={"pillar.get": lambda key, default=None: pillar.get(key, default)}, tag="kiosk/alert/power/kiosk-e2",
    )
    assert result["result"], result
    return salt.utils.yaml.safe_load(result["data"])


def test_log_line_only_without_hooks():
    reactions = render({})
    assert list(reactions) == ["kiosk-power-alert-log"]
    args = reactions["kiosk-power-alert-log"]["runner.salt.cmd"][0]["args"]
    assert args[0] == {"fun": "log.warning"}
    assert args[1]["message"].startswith("KIOSK POWER ALERT kiosk kiosk-e2 (east): expected off, observed on")
    assert "power event 7 (rule weekday-hours)" in args[1]["message"]


def test_mail_and_zabbix_hooks_from_pillar():
    reactions = render({"mail": {"to": "ops@hospital.example"},
                        "zabbix_sender": {"server": "zbx", "host": "fleet", "key": "kiosk.alert"}})
    assert set(reactions) == {"kiosk-power-alert-log", "kiosk-power-alert-mail", "kiosk-power-alert-zabbix"}
    mail = reactions["kiosk-power-alert-mail"]["local.smtp.send_msg"]
    assert {"tgt": "central"} in mail
    args = next(item["args"] for item in mail if "args" in item)
    assert args[0] == {"recipient": "ops@hospital.example"}
    assert args[1]["message"].startswith("kiosk kiosk-e2 (east): expected off, observed on")
    assert args[2:] == [{"subject": "Kiosk kiosk-e2 power state wrong"}, {"profile": "smtp"}]
    zabbix = reactions["kiosk-power-alert-zabbix"]["runner.salt.cmd"][0]["args"]
    assert zabbix[1]["cmd"][:7] == ["zabbix_sender", "-z", "zbx", "-s", "fleet", "-k", "kiosk.alert"]
    assert zabbix[2] == {"python_shell": False}
