# For the east campus's kiosks only (top.sls): their masters, by relay minion
# id. Every relay of the campus (kiosk:campuses:east:relays); a relay of
# another campus here makes kiosk.kiosk fail naming kiosk:relays. The
# addresses and master_port come from kiosk/fleet.sls (relay_addresses,
# ports:relay_ret).
kiosk:
  relays: [relay-e1, relay-e2]
