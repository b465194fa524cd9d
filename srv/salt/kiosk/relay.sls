{#- A campus relay (Raspberry Pi): salt-master + salt-syndic under the central
    master, its own minion with the kiosk_env beacon, nmap, the returner on
    the syndic master and the file root releases are staged into.

    Pillar (see srv/pillar/kiosk/relay.sls): kiosk:db is the relay database
    account (not the owner's); it becomes the syndic master's kiosk_mysql
    returner setting. The syndic config is written with show_changes: False,
    so no state return carries the database settings.

    Several relays per campus (kiosks list them all as their masters): every
    relay master of a campus listens on kiosk:ports:relay_ret (default 4506)
    and uses ONE master key pair, and each holds the campus's kiosk keys as
    accepted (no auto_accept). From kiosk:campus_keys:<its campus> (a pillar
    file served only to that campus's relays, srv/pillar/kiosk/keys/; never
    through salt://, which every minion of a master can read) it writes, into
    <kiosk:paths:master_pki> (default /etc/salt/pki/master): master.pem (mode
    0400) and master.pub (0644), the public key into the relay minion's
    <kiosk:paths:minion_pki>/minion_master.pub (its master's key changes too),
    and each kiosk key to minions/<minion id> (0644). Only the relay's own
    campus's entry is read. show_changes: False on all of them, and no key is
    in any state name, comment or return; master.pem is read from pillar when
    the state runs (contents_pillar), so it is in no rendered SLS either. The
    pair is required when the campus lists more than one relay; a campus's
    only relay without kiosk:campus_keys keeps its own key pair. Restart salt-master (then salt-minion) after
    the key pair changed. Keys of kiosks removed from pillar are left for
    salt-key -d.

    A standby master of masters (kiosk:standby_address): each relay runs a
    second salt-syndic for it (one salt-syndic with a syndic_master list stops
    forwarding to both masters when one dies, on tcp with Salt 3008.4). Its
    configuration directory <kiosk:paths:syndic_standby> (default
    /etc/salt/syndic-standby) holds a master file including the relay's own
    (<kiosk:paths:salt_etc>/master), the same syndic settings with the
    standby's address and its own pid and log files, and a minion file with
    the relay's id including the relay's minion settings; the unit
    salt-syndic-standby.service runs `salt-syndic -c <that directory>`
    (running and enabled unless kiosk:manage_services is False).

    Bad pillar (a kiosk id that is no valid minion id, such as ../x, a key
    that is no PEM key, a master_pub not matching master_pem, a relay listed
    under two campuses) is checked by the salt-kiosk library before anything
    is written: the role renders one failing state naming the pillar key and
    what is accepted, and applies nothing. -#}
{%- from 'kiosk/map.jinja' import kiosk, master_d, minion_d, srv_salt, release_root, master_pki, minion_pki, syndic_standby, systemd_dir, salt_etc, publish_port, ret_port, relay_ret_port, checks, missing_state, invalid_state with context %}
{%- set me = grains['id'] %}
{%- set campus = [] %}
{%- set relays_of = {} %}
{%- for name, spec in kiosk.get('campuses', {}).items() %}
{%-   set relays = (spec or {}).get('relays') or [] %}
{%-   do relays_of.update({name: [relays] if relays is string else relays}) %}
{%-   if me in relays_of[name] %}{% do campus.append(name) %}{% endif %}
{%- endfor %}
{%- set missing = [] %}
{%- if not kiosk.get('central_address') %}{% do missing.append('kiosk:central_address') %}{% endif %}
{%- if not kiosk.get('db') %}{% do missing.append('kiosk:db') %}{% endif %}
{%- if not campus %}{% do missing.append('kiosk:campuses:<campus>:relays entry for ' ~ me|string) %}{% endif %}
{%- if missing %}
{{ missing_state(missing) }}
{%- else %}
{%- set campus_relays = relays_of[campus[0]] %}
{#- A relay listed under two campuses, a campus of several relays (their
    shared key pair is required) or key material: checked by the library.
    A campus's only relay without kiosk:campus_keys keeps its own key. #}
{%- if campus|length > 1 or campus_relays|length > 1 or kiosk.get('campus_keys') %}
{%-   set checked = salt['slsutil.renderer'](checks, default_renderer='py', check='relay_keys', settings=kiosk, minion=me) %}
{%- else %}
{%-   set checked = {'result': {'campus': campus[0], 'master_pem': None, 'master_pub': None, 'kiosks': {}}} %}
{%- endif %}
{%- if checked.get('error') %}
{{ invalid_state(checked.error) }}
{%- else %}
{%- set keys = checked.result %}
{%- set address = kiosk.get('relay_addresses', {}).get(me, grains.get('fqdn_ip4', ['0.0.0.0'])[0]) %}
{%- set beacon = [] %}
{%- for key, value in kiosk.get('sensors', {}).items() %}{% do beacon.append({key: value}) %}{% endfor %}
{%- set minion_config = {'kiosk': {'role': 'relay', 'campus': keys.campus, 'wol_source': address, 'release_root': release_root}} %}
{%- if beacon %}{% do minion_config.update({'beacons': {'kiosk_env': beacon}}) %}{% endif %}

{%- set syndic_config = {
      'transport': 'tcp',
      'interface': address,
      'publish_port': publish_port,
      'ret_port': relay_ret_port,
      'syndic_master': kiosk.central_address,
      'syndic_master_port': ret_port,
      'master_job_cache': 'kiosk_mysql',
      'kiosk_mysql': {'db': kiosk.db, 'master_id': me},
      'file_roots': {'base': [srv_salt, release_root]},
    } %}

kiosk-syndic-config:
  file.serialize:
    - name: {{ (master_d ~ '/kiosk-syndic.conf')|tojson }}
    - dataset: {{ syndic_config|tojson }}
    - serializer: yaml
    - makedirs: True
    - mode: "0640"
    - show_changes: False
{%- if kiosk.get('standby_address') %}
{%-   set standby_config = {} %}
{%-   do standby_config.update(syndic_config) %}
{%-   do standby_config.update({
        'syndic_master': kiosk.standby_address,
        'syndic_pidfile': '/var/run/salt-syndic-standby.pid',
        'syndic_log_file': '/var/log/salt/syndic-standby',
      }) %}

kiosk-standby-syndic-master:
  file.serialize:
    - name: {{ (syndic_standby ~ '/master')|tojson }}
    - dataset: {{ {'include': [salt_etc ~ '/master']}|tojson }}
    - serializer: yaml
    - makedirs: True
    - mode: "0640"

kiosk-standby-syndic-config:
  file.serialize:
    - name: {{ (syndic_standby ~ '/master.d/kiosk-syndic.conf')|tojson }}
    - dataset: {{ standby_config|tojson }}
    - serializer: yaml
    - makedirs: True
    - mode: "0640"
    - show_changes: False

kiosk-standby-syndic-minion:
  file.serialize:
    - name: {{ (syndic_standby ~ '/minion')|tojson }}
    - dataset: {{ {'id': me, 'include': [salt_etc ~ '/minion', minion_d ~ '/*.conf']}|tojson }}
    - serializer: yaml
    - makedirs: True
    - mode: "0640"

kiosk-standby-syndic-unit:
  file.managed:
    - name: {{ (systemd_dir ~ '/salt-syndic-standby.service')|tojson }}
    - contents: {{ ("[Unit]\nDescription=The Salt syndic for the standby master of masters\n"
                    ~ "After=network.target salt-master.service\n\n[Service]\nType=notify\nNotifyAccess=all\n"
                    ~ "ExecStart=/usr/bin/salt-syndic -c " ~ syndic_standby ~ "\nRestart=on-failure\n\n"
                    ~ "[Install]\nWantedBy=multi-user.target\n")|tojson }}
    - makedirs: True
{%-   if kiosk.get('manage_services', True) %}
  service.running:
    - name: salt-syndic-standby
    - enable: True
    - watch:
      - file: kiosk-standby-syndic-unit
      - file: kiosk-standby-syndic-config
{%-   endif %}
{%- endif %}

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
{%- if keys.master_pem %}

kiosk-campus-master-key:
  file.managed:
    - name: {{ (master_pki ~ '/master.pem')|tojson }}
    {#- Read from pillar when the state runs: the private key is in no
        rendered SLS data (nor in the minion's highstate cache). #}
    - contents_pillar: {{ ('kiosk:campus_keys:' ~ keys.campus ~ ':master_pem')|tojson }}
    - mode: "0400"
    - makedirs: True
    - dir_mode: "0700"
    - show_changes: False

kiosk-campus-master-pub:
  file.managed:
    - name: {{ (master_pki ~ '/master.pub')|tojson }}
    - contents: {{ keys.master_pub|tojson }}
    - mode: "0644"
    - makedirs: True
    - dir_mode: "0700"
    - show_changes: False

kiosk-relay-minion-master-pub:
  file.managed:
    - name: {{ (minion_pki ~ '/minion_master.pub')|tojson }}
    - contents: {{ keys.master_pub|tojson }}
    - mode: "0644"
    - makedirs: True
    - dir_mode: "0700"
    - show_changes: False
{%- endif %}
{%- for kiosk_id, pub in keys.kiosks|dictsort %}

{{ ('kiosk-seeded-key-' ~ kiosk_id)|tojson }}:
  file.managed:
    - name: {{ (master_pki ~ '/minions/' ~ kiosk_id)|tojson }}
    - contents: {{ pub|tojson }}
    - mode: "0644"
    - makedirs: True
    - dir_mode: "0700"
    - show_changes: False
{%- endfor %}

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
{%- endif %}
