# Example: two campuses. The database password stays out of this repository:
# put it in /etc/salt/kiosk-db.secret (mode 0600) on the central master and
# on every relay.
kiosk:
  central_address: 10.0.0.10         # the master of masters, as the syndics reach it
  ports: {publish: 4505, ret: 4506}  # ints: a quoted port breaks tcp syndics (see README)
  db:
    host: db.hospital.example
    user: kiosk
    password_file: /etc/salt/kiosk-db.secret
    database: kiosk
  default_state: "off"
  campuses:
    east:
      timezone: Asia/Shanghai
      broadcast: 10.1.255.255
      relays: [relay-e1, relay-e2]
    west:
      timezone: Europe/Berlin
      broadcast: 10.2.255.255
      relays: [relay-w1]
  relay_addresses: {relay-e1: 10.1.0.2, relay-e2: 10.1.0.3, relay-w1: 10.2.0.2}
  rules:
    weekday-hours: {power: "on", days: mon-fri, start: "07:30", end: "18:00", target: "*", priority: 0}
    saturday-clinics: {power: "on", days: sat, start: "08:00", end: "12:00", target: "group:outpatient", priority: 0}
    national-day: {power: "off", dates: ["2026-10-01", "2026-10-02"], start: "00:00", end: "24:00", target: "*", priority: 10}
  sensors:
    driver: circuitpython
    dht_type: 11
    dht_pin: 4
    smoke_pin: 17
    temperature: [5, 35]
    humidity: [20, 80]
    interval: 60
  api:
    rest_cherrypy: {port: 8000, ssl_crt: /etc/pki/tls/certs/salt-api.crt, ssl_key: /etc/pki/tls/private/salt-api.key}
    clients: [runner]
    external_auth:
      pam:
        kiosk-ops: ["@runner"]
  # zabbix: {server: zabbix.hospital.example}
  # freeipa: {domain: hospital.example, otp: ONE-TIME-PASSWORD}
