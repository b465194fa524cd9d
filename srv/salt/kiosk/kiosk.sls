{#- A kiosk: minion settings, the release check at every minion start, and
    optional Zabbix agent / FreeIPA enrolment when pillar configures them. -#}
{%- from 'kiosk/map.jinja' import kiosk, minion_d, release_dir with context %}
{%- set zabbix = kiosk.get('zabbix', {}) %}
{%- set freeipa = kiosk.get('freeipa', {}) %}

kiosk-minion-config:
  file.serialize:
    - name: {{ minion_d }}/kiosk.conf
    - dataset: {{ {
        'kiosk': {'role': 'kiosk', 'release_dir': release_dir},
        'startup_states': 'sls',
        'sls_list': ['kiosk.release'],
      } | json }}
    - serializer: yaml
    - makedirs: True

kiosk-release-dir:
  file.directory:
    - name: {{ release_dir }}
    - makedirs: True
    - mode: "0755"
{%- if zabbix.get('server') %}

kiosk-zabbix-agent:
  pkg.installed:
    - name: zabbix-agent
  file.managed:
    - name: /etc/zabbix/zabbix_agentd.d/kiosk.conf
    - contents: |
        Server={{ zabbix.server }}
        ServerActive={{ zabbix.get('server_active', zabbix.server) }}
        Hostname={{ grains['id'] }}
    - require:
      - pkg: kiosk-zabbix-agent
  service.running:
    - name: zabbix-agent
    - enable: True
    - watch:
      - file: kiosk-zabbix-agent
{%- endif %}
{%- if freeipa.get('domain') and freeipa.get('otp') %}

kiosk-freeipa-enrolment:
  cmd.run:
    - name: >-
        ipa-client-install --unattended --domain={{ freeipa.domain }}
        --server={{ freeipa.get('server', 'ipa.' ~ freeipa.domain) }} --password={{ freeipa.otp }}
        --hostname={{ grains['fqdn'] }}
    - creates: /etc/ipa/default.conf
{%- endif %}
