{#- A campus relay (Raspberry Pi): salt-master + salt-syndic under the central
    master, its own minion with the kiosk_env beacon, nmap, the returner on
    the syndic master and the file root releases are staged into. -#}
{%- from 'kiosk/map.jinja' import kiosk, master_d, minion_d, srv_salt, release_root, publish_port, ret_port, missing_state with context %}
{%- set me = grains['id'] %}
{%- set campus = [] %}
{%- for name, spec in kiosk.get('campuses', {}).items() %}
{%-   if me in (spec or {}).get('relays', []) %}{% do campus.append(name) %}{% endif %}
{%- endfor %}
{%- set missing = [] %}
{%- if not kiosk.get('central_address') %}{% do missing.append('kiosk:central_address') %}{% endif %}
{%- if not kiosk.get('db') %}{% do missing.append('kiosk:db') %}{% endif %}
{%- if not campus %}{% do missing.append('kiosk:campuses:<campus>:relays entry for ' ~ me) %}{% endif %}
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
    - name: {{ master_d }}/kiosk-syndic.conf
    - dataset: {{ {
        'transport': 'tcp',
        'interface': address,
        'publish_port': publish_port,
        'syndic_master': kiosk.central_address,
        'syndic_master_port': ret_port,
        'master_job_cache': 'kiosk_mysql',
        'kiosk_mysql': {'db': kiosk.db, 'master_id': me},
        'file_roots': {'base': [srv_salt, release_root]},
      } | json }}
    - serializer: yaml
    - makedirs: True
    - mode: "0640"

kiosk-relay-minion-config:
  file.serialize:
    - name: {{ minion_d }}/kiosk.conf
    - dataset: {{ minion_config | json }}
    - serializer: yaml
    - makedirs: True

kiosk-release-root:
  file.directory:
    - name: {{ release_root }}
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
