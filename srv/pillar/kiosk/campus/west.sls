# For the west campus's kiosks only (top.sls): their masters, by relay minion
# id (see campus/east.sls).
kiosk:
  relays: [relay-w1]
