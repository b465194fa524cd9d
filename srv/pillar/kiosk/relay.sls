# Only for the relays' own minions (see top.sls). The relays' addresses are in
# kiosk/fleet.sls (the kiosks need them too); the campus master key pair and
# kiosk keys in kiosk/keys/<campus>.sls, served only to that campus's relays.
kiosk:
  # The relay database account, not the owner's: the syndic master's
  # kiosk_mysql returner writes job loads, returns and events with it. Put its
  # password in /etc/salt/kiosk-relay-db.secret (mode 0600) on every relay.
  db:
    host: db.hospital.example
    user: kiosk_relay
    password_file: /etc/salt/kiosk-relay-db.secret
    database: kiosk
  sensors:
    driver: circuitpython
    dht_type: 11
    dht_pin: 4
    smoke_pin: 17
    temperature: [5, 35]
    humidity: [20, 80]
    interval: 60
