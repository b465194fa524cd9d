{#-
  Reactor for salt/beacon/<relay>/kiosk_env/alert/<sensor>: a relay's sensor
  crossed a threshold (high, low, smoke) or came back in range (clear).

  Master config (the central role writes it):

    reactor:
      - 'salt/beacon/*/kiosk_env/alert/*':
        - salt://reactor/env_alert.sls

  The event is untrusted input (any minion can fire an event with a matching
  tag): every value from `data` and the tag is cleaned (control characters and
  line breaks become spaces, at most 200 characters) and written only through
  `tojson`, as one quoted scalar.
-#}
{%- set alert = data if data is mapping else {} %}
{%- set parts = tag.split('/') %}
{%- set f = {'relay': parts[2] if parts|length > 2 else ''} %}
{%- for key in ('sensor', 'state', 'value', 'limits') %}
{%-   do f.update({key: alert.get(key)}) %}
{%- endfor %}
{%- for key in f %}
{%-   do f.update({key: (f[key]|string|regex_replace('[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff]', ' '))[:200]}) %}
{%- endfor %}
{%- set text = "relay %s: %s %s (value %s, limits %s)"|format(f.relay, f.sensor, f.state, f.value, f.limits) %}

kiosk-env-alert-log:
  runner.salt.cmd:
    - args:
      - fun: log.warning
      - message: {{ ("KIOSK ENV ALERT " ~ text)|tojson }}
