# Shared by the central master's minion, the relays and the kiosks (no
# secrets): how the syndics reach the central master, the ports, the campuses
# and where each relay's master listens.
kiosk:
  central_address: 10.0.0.10         # the master of masters, as the syndics reach it
  # Ints: a quoted port breaks tcp syndics (see README). publish and ret are
  # the central master's (every relay master uses the same publish port);
  # relay_ret is the ret_port of EVERY relay master, the master_port of every
  # kiosk: a kiosk lists all relays of its campus with one master_port
  # (a host:port entry in the list does not fail over).
  ports: {publish: 4505, ret: 4506, relay_ret: 4506}
  # A relay belongs to exactly one campus (listing it twice is refused).
  campuses:
    east:
      timezone: Asia/Shanghai
      broadcast: 10.1.255.255
      relays: [relay-e1, relay-e2]
    west:
      timezone: Europe/Berlin
      broadcast: 10.2.255.255
      relays: [relay-w1]
  # The address each relay's master listens on (interface) and its kiosks
  # connect to: kiosk.relay and kiosk.kiosk both read it.
  relay_addresses: {relay-e1: 10.1.0.2, relay-e2: 10.1.0.3, relay-w1: 10.2.0.2}
