{#- The central master (master of masters): its kiosk settings, the database
    schema, the returner, the scheduler engine, salt-api, the alert hooks and
    the power rules.

    Pillar (see srv/pillar/kiosk/central.sls): kiosk:db is the database owner
    account. The master config is written with show_changes: False, so no
    state return carries the database settings (a password given inline
    instead of password_file included). -#}
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
{%- set settings = {'db': kiosk.db, 'default_state': kiosk.get('default_state', 'off'), 'campuses': kiosk.campuses} %}
{#- Where the master may read CSV files and release sources and write token
    files, and where the hop-1 release server listens (default: the address
    the relays' syndics reach this master at). #}
{%- for key in ('import_dirs', 'vnc_token_dir', 'vnc_token_secret', 'release_store', 'release_sources',
                'release_urls', 'release_serve_address', 'release_serve_port') %}
{%-   if kiosk.get(key) is not none %}{% do settings.update({key: kiosk[key]}) %}{% endif %}
{%- endfor %}
{%- if 'release_serve_address' not in settings and kiosk.get('central_address') %}
{%-   do settings.update({'release_serve_address': kiosk.central_address}) %}
{%- endif %}
{#- Alert hooks of srv/salt/reactor/power_alert.sls: the reactor reads them from
    the master config (a reactor render sees no pillar). Mail goes through this
    minion unless kiosk:alerts:mail:minion names another. #}
{%- set alerts = kiosk.get('alerts') or {} %}
{%- if alerts %}
{%-   set hooks = {} %}
{%-   do hooks.update(alerts) %}
{%-   if hooks.get('mail') and not hooks.mail.get('minion') %}
{%-     set mail = {} %}
{%-     do mail.update(hooks.mail) %}
{%-     do mail.update({'minion': grains['id']}) %}
{%-     do hooks.update({'mail': mail}) %}
{%-   endif %}
{%-   do settings.update({'alerts': hooks}) %}
{%- endif %}
{%- set config = {
      'order_masters': True,
      'transport': 'tcp',
      'kiosk': settings,
      'master_job_cache': 'kiosk_mysql',
      'event_return': 'kiosk_mysql',
      'event_return_whitelist': ['salt/beacon/*/kiosk_env/*'],
      'engines': [{'kiosk_scheduler': kiosk.get('engine', {})}],
      'reactor': [
        {'kiosk/alert/power/*': ['salt://reactor/power_alert.sls']},
        {'salt/beacon/*/kiosk_env/alert/*': ['salt://reactor/env_alert.sls']},
      ],
    } %}
{#- master_id: this master's address as the relays' syndics name it (each
    syndic sends a return to the master of masters whose address equals the
    job's master_id): kiosk:standby_address on the standby, else
    kiosk:central_address. #}
{%- set standby = kiosk.get('standby_address') %}
{%- if standby and standby in grains.get('ipv4', []) %}
{%-   do config.update({'master_id': standby}) %}
{%- elif kiosk.get('central_address') %}
{%-   do config.update({'master_id': kiosk.central_address}) %}
{%- endif %}
{#- With a standby, each engine names the other master of masters as its peer:
    it refuses to start on a database that peer never used. #}
{%- if standby and kiosk.get('central_address') and 'peers' not in kiosk.get('engine', {}) %}
{%-   set engine = {} %}
{%-   do engine.update(kiosk.get('engine', {})) %}
{%-   do engine.update({'peers': [kiosk.central_address if config.master_id == standby else standby]}) %}
{%-   do config.update({'engines': [{'kiosk_scheduler': engine}]}) %}
{%- endif %}
{%- if kiosk.get('api') %}
{#-   The fleet console (static files in the installed salt_kiosk library),
      served by rest_cherrypy at /console unless kiosk:api:console is False. #}
{%-   set rest = {} %}
{%-   do rest.update(kiosk.api.get('rest_cherrypy', {'port': 8000})) %}
{%-   if kiosk.api.get('console', True) %}
{%-     do rest.update(salt['kiosk.console_paths']()) %}
{%-   endif %}
{%-   do config.update({
        'rest_cherrypy': rest,
        'netapi_enable_clients': kiosk.api.get('clients', ['runner']),
        'external_auth': kiosk.api.get('external_auth', {}),
      }) %}
{%- endif %}

kiosk-central-config:
  file.serialize:
    - name: {{ (master_d ~ '/kiosk.conf')|tojson }}
    - dataset: {{ config|tojson }}
    - serializer: yaml
    - makedirs: True
    - mode: "0640"
    - show_changes: False

kiosk-schema:
  kiosk_store.schema_current:
    - name: kiosk

{#- Least-privilege database accounts (kiosk:db_accounts), created through
    kiosk:db_admin (an account allowed to create users and grant) after the
    schema exists: role relay = SELECT, INSERT, UPDATE on the result tables. #}
{%- for user, spec in (kiosk.get('db_accounts') or {}).items() %}

{{ ('kiosk-db-account-' ~ user)|tojson }}:
  kiosk_store.account_present:
    - name: {{ user|string|tojson }}
    - role: {{ (spec or {}).get('role', 'relay')|string|tojson }}
    - host: {{ (spec or {}).get('host', '%')|string|tojson }}
    - password_file: {{ (spec or {}).get('password_file', '')|string|tojson }}
    - require:
      - kiosk_store: kiosk-schema
{%- endfor %}

{%- for name, rule in kiosk.get('rules', {}).items() %}

{{ ('kiosk-rule-' ~ name)|tojson }}:
  kiosk_power.rule_present:
    - name: {{ name|string|tojson }}
{%-   for key in ('power', 'start', 'end', 'days', 'dates', 'target', 'priority', 'valid_from', 'valid_until') %}
{%-     if key in rule %}
    - {{ key }}: {{ rule[key]|tojson }}
{%-     endif %}
{%-   endfor %}
    - require:
      - kiosk_store: kiosk-schema
{%- endfor %}
{%- endif %}
