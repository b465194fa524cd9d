{#- A kiosk: minion settings (its masters: every relay of its campus), the
    release check at every minion start, and optional Zabbix agent / FreeIPA
    enrolment when pillar configures them.

    Pillar (see srv/pillar/kiosk/kiosk.sls and srv/pillar/kiosk/campus/):
    kiosk:relays (this kiosk's relays, by minion id: every relay of its
    campus), kiosk:campuses and kiosk:relay_addresses (kiosk/fleet.sls),
    kiosk:ports (publish, relay_ret), kiosk:paths, kiosk:zabbix,
    kiosk:freeipa (domain, server, python); the one-time password
    kiosk:freeipa:otp comes from a pillar file served only to this kiosk.

    Failover is Salt's multi-master with the default master_type: the minion
    config gets master: [the relays' addresses], one master_port
    (kiosk:ports:relay_ret, the ret_port of every relay master of the
    campus), publish_port, transport: tcp, and minion_jid_queue_hwm (both
    relays publish each job; the jid queue runs it once). master_type:
    failover is not used (on tcp it never tries the second relay of a kiosk
    that starts while the first is down). The relays must share one master
    key pair and hold this kiosk's key (kiosk.relay, kiosk:campus_keys).
    Relays of another campus, or of no campus, in kiosk:relays make this role
    fail with one state naming kiosk:relays, and nothing is written (the
    check is the salt-kiosk library's, salt_kiosk.config.kiosk_masters).
    Without kiosk:relays the minion config names no master: the kiosk keeps
    the one it was installed with (no failover). Restart salt-minion to
    connect to a new list.

    ipa-client-install takes the password only as an option (-w/--password).
    The OTP therefore never appears on a command line Salt starts, nor in a
    state name, comment or return: it goes to the enrolment helper
    (kiosk/files/ipa_enrol.py, installed as <kiosk:paths:sbin>/kiosk-ipa-enrol)
    on standard input, and the helper runs ipa-client-install inside its own
    process. Output is neither logged nor returned. -#}
{%- from 'kiosk/map.jinja' import kiosk, minion_d, release_dir, sbin, publish_port, relay_ret_port, checks, invalid_state with context %}
{%- set zabbix = kiosk.get('zabbix', {}) %}
{%- set freeipa = kiosk.get('freeipa', {}) %}
{%- set config = {
      'kiosk': {'role': 'kiosk', 'release_dir': release_dir},
      'startup_states': 'sls',
      'sls_list': ['kiosk.release'],
    } %}
{%- set checked = {} %}
{%- if 'relays' in kiosk %}
{%-   set checked = salt['slsutil.renderer'](checks, default_renderer='py', check='kiosk_masters', settings=kiosk, minion=grains['id']) %}
{%-   if not checked.get('error') %}
{%-     do config.kiosk.update({'campus': checked.result.campus}) %}
{%-     do config.update({
          'master': checked.result.addresses,
          'master_port': relay_ret_port,
          'publish_port': publish_port,
          'transport': 'tcp',
          'minion_jid_queue_hwm': 100,
        }) %}
{%-   endif %}
{%- endif %}
{%- if checked.get('error') %}
{{ invalid_state(checked.error) }}
{%- else %}

kiosk-minion-config:
  file.serialize:
    - name: {{ (minion_d ~ '/kiosk.conf')|tojson }}
    - dataset: {{ config|tojson }}
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
{%- endif %}
