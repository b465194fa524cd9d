{#-
  Reactor for kiosk/alert/power/<kiosk id>: a kiosk is still in the wrong power
  state after the last verification sweep.

  Master config (the central role of the formula writes both keys into
  master.d/kiosk.conf, the hooks from pillar kiosk:alerts):

    reactor:
      - 'kiosk/alert/power/*':
        - salt://reactor/power_alert.sls
    kiosk:
      alerts:
        mail:                          # smtp.send_msg, run by one minion
          to: ops@hospital.example
          minion: central              # the minion id that sends it (default: this master's id without "_master")
          profile: smtp                # smtp profile in that minion's config (default smtp)
        zabbix_sender:                 # zabbix_sender run on this master
          server: zabbix.hospital.example
          host: kiosk-fleet
          key: kiosk.power.alert
          command: zabbix_sender       # optional: the program's path

  Always writes a log line on the master; each configured hook adds one
  reaction. The hooks are read from the master's own configuration (opts):
  a reactor render on the master sees an empty pillar, so pillar cannot carry
  them.

  The event is untrusted input: any minion can fire an event with this tag to
  its master, and syndics forward it to the master of masters. Every value
  taken from `data` (and the tag) is cleaned (control characters and line
  breaks become spaces, at most 200 characters) and written only through
  `tojson`, as one quoted scalar, so hostile text stays text in the reaction
  and never adds YAML or states. Values from the master config are quoted the
  same way.
-#}
{%- set alert = data if data is mapping else {} %}
{%- set hooks = (opts.get('kiosk') or {}).get('alerts') or {} %}
{%- set f = {} %}
{%- for key in ('kiosk', 'campus', 'expected', 'observed', 'event', 'rule', 'reason') %}
{%-   do f.update({key: (alert.get(key)|string|regex_replace('[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff]', ' '))[:200]}) %}
{%- endfor %}
{%- set text = "kiosk %s (%s): expected %s, observed %s after power event %s (rule %s): %s"|format(
      f.kiosk, f.campus, f.expected, f.observed, f.event, f.rule, f.reason) %}

kiosk-power-alert-log:
  runner.salt.cmd:
    - args:
      - fun: log.warning
      - message: {{ ("KIOSK POWER ALERT " ~ text)|tojson }}

{%- if hooks.get('mail') %}
{%-   set mail = hooks.mail %}
{%-   set minion = mail.get('minion') or opts['id']|regex_replace('_master$', '') %}

kiosk-power-alert-mail:
  local.smtp.send_msg:
    - tgt: {{ [minion|string]|tojson }}
    - tgt_type: list
    - args:
      - recipient: {{ (mail.to if mail.to is string else mail.to|join(','))|tojson }}
      - message: {{ text|tojson }}
      - subject: {{ ("Kiosk " ~ f.kiosk ~ " power state wrong")|tojson }}
      - profile: {{ mail.get('profile', 'smtp')|tojson }}
{%- endif %}

{%- if hooks.get('zabbix_sender') %}
{%-   set zabbix = hooks.zabbix_sender %}

kiosk-power-alert-zabbix:
  runner.salt.cmd:
    - args:
      - fun: cmd.run
      - cmd: {{ [zabbix.get('command', 'zabbix_sender'), '-z', zabbix.server, '-s', zabbix.host,
                 '-k', zabbix.key, '-o', text]|map('string')|list|tojson }}
      - python_shell: false
{%- endif %}
