{#- The central master (master of masters): its kiosk settings, the database
    schema, the returner, the scheduler engine, salt-api and the power rules. -#}
{%- from 'kiosk/map.jinja' import kiosk, master_d, missing_state with context %}
{%- set missing = [] %}
{%- if not kiosk.get('db') %}{% do missing.append('kiosk:db') %}{% endif %}
{%- if not kiosk.get('campuses') %}{% do missing.append('kiosk:campuses') %}{% endif %}
{%- for name, campus in kiosk.get('campuses', {}).items() %}
{%-   if not (campus or {}).get('timezone') %}{% do missing.append('kiosk:campuses:' ~ name ~ ':timezone') %}{% endif %}
{%- endfor %}
{%- if missing %}
{{ missing_state(missing) }}
{%- else %}
{%- set config = {
      'order_masters': True,
      'transport': 'tcp',
      'kiosk': {'db': kiosk.db, 'default_state': kiosk.get('default_state', 'off'), 'campuses': kiosk.campuses},
      'master_job_cache': 'kiosk_mysql',
      'event_return': 'kiosk_mysql',
      'event_return_whitelist': ['salt/beacon/*/kiosk_env/*'],
      'engines': [{'kiosk_scheduler': kiosk.get('engine', {})}],
      'reactor': [
        {'kiosk/alert/power/*': ['salt://reactor/power_alert.sls']},
        {'salt/beacon/*/kiosk_env/alert/*': ['salt://reactor/env_alert.sls']},
      ],
    } %}
{%- if kiosk.get('api') %}
{%-   do config.update({
        'rest_cherrypy': kiosk.api.get('rest_cherrypy', {'port': 8000}),
        'netapi_enable_clients': kiosk.api.get('clients', ['runner']),
        'external_auth': kiosk.api.get('external_auth', {}),
      }) %}
{%- endif %}

kiosk-central-config:
  file.serialize:
    - name: {{ master_d }}/kiosk.conf
    - dataset: {{ config | json }}
    - serializer: yaml
    - makedirs: True
    - mode: "0640"

kiosk-schema:
  kiosk_store.schema_current:
    - name: kiosk

{%- for name, rule in kiosk.get('rules', {}).items() %}

kiosk-rule-{{ name }}:
  kiosk_power.rule_present:
    - name: {{ name | json }}
{%-   for key in ('power', 'start', 'end', 'days', 'dates', 'target', 'priority', 'valid_from', 'valid_until') %}
{%-     if key in rule %}
    - {{ key }}: {{ rule[key] | json }}
{%-     endif %}
{%-   endfor %}
    - require:
      - kiosk_store: kiosk-schema
{%- endfor %}
{%- endif %}
