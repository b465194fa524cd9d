# For the kiosks: only what kiosk.sls needs. No database, API, key or
# enrolment secrets; a kiosk's FreeIPA one-time password comes from its own
# file (see top.sls), never from this shared one.
#
# A kiosk's masters: kiosk:relays (kiosk/campus/<campus>.sls, every relay of
# its campus, by minion id), resolved through kiosk:relay_addresses and
# kiosk:campuses with master_port kiosk:ports:relay_ret (kiosk/fleet.sls).
kiosk:
  paths:
    release_dir: /opt/kiosk/releases
  # zabbix: {server: zabbix.hospital.example}
  # freeipa: {domain: hospital.example, server: ipa.hospital.example}   # python: /usr/bin/python3
