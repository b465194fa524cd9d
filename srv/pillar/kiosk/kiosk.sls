# For the kiosks: only what kiosk.sls needs. No database, API or enrolment
# secrets; a kiosk's FreeIPA one-time password comes from its own file (see
# top.sls), never from this shared one.
kiosk:
  paths:
    release_dir: /opt/kiosk/releases
  # zabbix: {server: zabbix.hospital.example}
  # freeipa: {domain: hospital.example, server: ipa.hospital.example}   # python: /usr/bin/python3
