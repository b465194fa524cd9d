{#-
  Reactor for kiosk/alert/power/<kiosk id>: a kiosk is still in the wrong power
  state after the last verification sweep.

  Master config:

    reactor:
      - 'kiosk/alert/power/*':
        - salt://reactor/power_alert.sls

  Always writes a log line on the master. Optional hooks from the master's
  pillar (ext_pillar/pillar of the master's own minion id) under
  kiosk:alerts:
    mail: {to: ops@hospital.example, profile: smtp}   # smtp.send_msg on the master's minion
    zabbix_sender: {server: zabbix.example, host: kiosk-fleet, key: kiosk.power.alert}
-#}
{%- set alert = data %}
{%- set text = "kiosk %s (%s): expected %s, observed %s after power event %s (rule %s): %s"|format(
      alert.get('kiosk'), alert.get('campus'), alert.get('expected'), alert.get('observed'),
      alert.get('event'), alert.get('rule'), alert.get('reason')) %}
{%- set hooks = salt['pillar.get']('kiosk:alerts', {}) %}

kiosk-power-alert-log:
  runner.salt.cmd:
    - args:
      - fun: log.warning
      - message: {{ ("KIOSK POWER ALERT " ~ text)|json }}

{%- if hooks.get('mail') %}
kiosk-power-alert-mail:
  local.smtp.send_msg:
    - tgt: {{ opts['id'] }}
    - args:
      - recipient: {{ hooks.mail.to }}
      - message: {{ text|json }}
      - subject: "Kiosk {{ alert.get('kiosk') }} power state wrong"
      - profile: {{ hooks.mail.get('profile', 'smtp') }}
{%- endif %}

{%- if hooks.get('zabbix_sender') %}
kiosk-power-alert-zabbix:
  runner.salt.cmd:
    - args:
      - fun: cmd.run
      - cmd: {{ ['zabbix_sender', '-z', hooks.zabbix_sender.server, '-s', hooks.zabbix_sender.host,
                 '-k', hooks.zabbix_sender.key, '-o', text]|json }}
      - python_shell: false
{%- endif %}
