{#-
  Reactor for salt/beacon/<relay>/kiosk_env/alert/<sensor>: a relay's sensor
  crossed a threshold (high, low, smoke) or came back in range (clear).

  Master config (the central role writes it):

    reactor:
      - 'salt/beacon/*/kiosk_env/alert/*':
        - salt://reactor/env_alert.sls
-#}
{%- set alert = data %}
{%- set relay = tag.split('/')[2] %}
{%- set text = "relay %s: %s %s (value %s, limits %s)"|format(
      relay, alert.get('sensor'), alert.get('state'), alert.get('value'), alert.get('limits')) %}

kiosk-env-alert-log:
  runner.salt.cmd:
    - args:
      - fun: log.warning
      - message: {{ ("KIOSK ENV ALERT " ~ text)|json }}
