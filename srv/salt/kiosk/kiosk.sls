{#- A kiosk: minion settings, the release check at every minion start, and
    optional Zabbix agent / FreeIPA enrolment when pillar configures them.

    Pillar (see srv/pillar/kiosk/kiosk.sls): kiosk:paths, kiosk:zabbix,
    kiosk:freeipa (domain, server, python); the one-time password
    kiosk:freeipa:otp comes from a pillar file served only to this kiosk.

    ipa-client-install takes the password only as an option (-w/--password).
    The OTP therefore never appears on a command line Salt starts, nor in a
    state name, comment or return: it goes to the enrolment helper
    (kiosk/files/ipa_enrol.py, installed as <kiosk:paths:sbin>/kiosk-ipa-enrol)
    on standard input, and the helper runs ipa-client-install inside its own
    process. Output is neither logged nor returned. -#}
{%- from 'kiosk/map.jinja' import kiosk, minion_d, release_dir, sbin with context %}
{%- set zabbix = kiosk.get('zabbix', {}) %}
{%- set freeipa = kiosk.get('freeipa', {}) %}

kiosk-minion-config:
  file.serialize:
    - name: {{ (minion_d ~ '/kiosk.conf')|tojson }}
    - dataset: {{ {
        'kiosk': {'role': 'kiosk', 'release_dir': release_dir},
        'startup_states': 'sls',
        'sls_list': ['kiosk.release'],
      }|tojson }}
    - serializer: yaml
    - makedirs: True

kiosk-release-dir:
  file.directory:
    - name: {{ release_dir|tojson }}
    - makedirs: True
    - mode: "0755"
{%- if zabbix.get('server') %}

kiosk-zabbix-agent:
  pkg.installed:
    - name: zabbix-agent
  file.managed:
    - name: /etc/zabbix/zabbix_agentd.d/kiosk.conf
    - contents: {{ ("Server=" ~ zabbix.server ~ "\nServerActive=" ~ zabbix.get('server_active', zabbix.server)
                    ~ "\nHostname=" ~ grains['id'] ~ "\n")|tojson }}
    - require:
      - pkg: kiosk-zabbix-agent
  service.running:
    - name: zabbix-agent
    - enable: True
    - watch:
      - file: kiosk-zabbix-agent
{%- endif %}
{%- if freeipa.get('domain') and freeipa.get('otp') %}
{%-   set helper = sbin ~ '/kiosk-ipa-enrol' %}
{%-   set command = [freeipa.get('python', '/usr/bin/python3'), '-I', helper,
                     '--domain', freeipa.domain, '--server', freeipa.get('server', 'ipa.' ~ freeipa.domain),
                     '--hostname', grains['fqdn']] %}

kiosk-freeipa-enrol-helper:
  file.managed:
    - name: {{ helper|tojson }}
    - source: salt://kiosk/files/ipa_enrol.py
    - mode: "0700"
    - makedirs: True

{# The cmd.run state always runs its name through a shell: every word is quoted. #}
kiosk-freeipa-enrolment:
  cmd.run:
    - name: {{ command|map('string')|map('quote')|join(' ')|tojson }}
    - stdin: {{ (freeipa.otp|string ~ "\n")|tojson }}
    - output_loglevel: quiet
    - hide_output: True
    - creates: /etc/ipa/default.conf
    - require:
      - file: kiosk-freeipa-enrol-helper
{%- endif %}
