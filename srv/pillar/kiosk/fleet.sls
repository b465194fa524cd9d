# Shared by the central master's minion and the relays (no secrets): how the
# syndics reach the central master, and the campuses.
kiosk:
  central_address: 10.0.0.10         # the master of masters, as the syndics reach it
  ports: {publish: 4505, ret: 4506}  # ints: a quoted port breaks tcp syndics (see README)
  campuses:
    east:
      timezone: Asia/Shanghai
      broadcast: 10.1.255.255
      relays: [relay-e1, relay-e2]
    west:
      timezone: Europe/Berlin
      broadcast: 10.2.255.255
      relays: [relay-w1]
