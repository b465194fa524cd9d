# Only for the relays' own minions (see top.sls).
kiosk:
  # The relay database account, not the owner's: the syndic master's
  # kiosk_mysql returner writes job loads, returns and events with it. Put its
  # password in /etc/salt/kiosk-relay-db.secret (mode 0600) on every relay.
  db:
    host: db.hospital.example
    user: kiosk_relay
    password_file: /etc/salt/kiosk-relay-db.secret
    database: kiosk
  relay_addresses: {relay-e1: 10.1.0.2, relay-e2: 10.1.0.3, relay-w1: 10.2.0.2}
  sensors:
    driver: circuitpython
    dht_type: 11
    dht_pin: 4
    smoke_pin: 17
    temperature: [5, 35]
    humidity: [20, 80]
    interval: 60
