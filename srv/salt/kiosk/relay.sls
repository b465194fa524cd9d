{#- A campus relay (Raspberry Pi): salt-master + salt-syndic under the central
    master, its own minion with the kiosk_env beacon, nmap, the returner on
    the syndic master and the file root releases are staged into.

    Pillar (see srv/pillar/kiosk/relay.sls): kiosk:db is the relay database
    account (not the owner's); it becomes the syndic master's kiosk_mysql
    returner setting. The syndic config is written with show_changes: False,
    so no state return carries the database settings. -#}
{%- from 'kiosk/map.jinja' import kiosk, master_d, minion_d, srv_salt, release_root, publish_port, ret_port, missing_state with context %}
{%- set me = grains['id'] %}
{%- set campus = [] %}
{%- for name, spec in kiosk.get('campuses', {}).items() %}
{%-   if me in (spec or {}).get('relays', []) %}{% do campus.append(name) %}{% endif %}
{%- endfor %}
{%- set missing = [] %}
{%- if not kiosk.get('central_address') %}{% do missing.append('kiosk:central_address') %}{% endif %}
{%- if not kiosk.get('db') %}{% do missing.append('kiosk:db') %}{% endif %}
{%- if not campus %}{% do missing.append('kiosk:campuses:<campus>:relays entry for ' ~ me|string) %}{% endif %}
{%- if missing %}
{{ missing_state(missing) }}
{%- else %}
{%- set address = kiosk.get('relay_addresses', {}).get(me, grains.get('fqdn_ip4', ['0.0.0.0'])[0]) %}
{%- set beacon = [] %}
{%- for key, value in kiosk.get('sensors', {}).items() %}{% do beacon.append({key: value}) %}{% endfor %}
{%- set minion_config = {'kiosk': {'role': 'relay', 'campus': campus[0], 'wol_source': address, 'release_root': release_root}} %}
{%- if beacon %}{% do minion_config.update({'beacons': {'kiosk_env': beacon}}) %}{% endif %}

kiosk-syndic-config:
  file.serialize:
    - name: {{ (master_d ~ '/kiosk-syndic.conf')|tojson }}
    - dataset: {{ {
        'transport': 'tcp',
        'interface': address,
        'publish_port': publish_port,
        'syndic_master': kiosk.central_address,
        'syndic_master_port': ret_port,
        'master_job_cache': 'kiosk_mysql',
        'kiosk_mysql': {'db': kiosk.db, 'master_id': me},
        'file_roots': {'base': [srv_salt, release_root]},
      }|tojson }}
    - serializer: yaml
    - makedirs: True
    - mode: "0640"
    - show_changes: False

kiosk-relay-minion-config:
  file.serialize:
    - name: {{ (minion_d ~ '/kiosk.conf')|tojson }}
    - dataset: {{ minion_config|tojson }}
    - serializer: yaml
    - makedirs: True

kiosk-release-root:
  file.directory:
    - name: {{ release_root|tojson }}
    - makedirs: True
    - mode: "0755"

{%- if kiosk.get('manage_packages', True) %}

kiosk-relay-packages:
  pkg.installed:
    - pkgs: [nmap]
{%- endif %}
{%- if grains.get('cpuarch') in ('armv7l', 'aarch64') and kiosk.get('manage_packages', True) %}

kiosk-sensor-libraries:
  pip.installed:
    - name: "salt-kiosk[pi]"
{%- endif %}
{%- endif %}
