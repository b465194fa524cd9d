# Example pillar for a two-campus fleet, split by role. Targets are minion ids
# (lists and globs of ids), never grains: grains are set by the minion itself,
# so a kiosk could claim the relay or central role, while its id is fixed by
# the key the master accepted.
#
# Each master compiles pillar only for its own minions: the central master for
# its own minion, each relay master for the relay's own minion and for the
# kiosks below it. Give each master only the files its minions need:
# kiosk/central.sls stays on the central master; kiosk/fleet.sls,
# kiosk/relay.sls, kiosk/kiosk.sls go to every relay master; kiosk/keys/<campus>.sls,
# kiosk/campus/<campus>.sls and the enrolment files of its own kiosks only to
# the relay masters of that campus.
#
# Several relays per campus: a kiosk lists every relay of its campus as its
# masters (multi-master) and so gets its pillar from whichever of them it
# asks: every relay master of a campus needs the same files.
#   kiosk:ports:relay_ret          the ret_port of every relay master (kiosk/fleet.sls)
#   kiosk:relay_addresses          {relay id: address}, for relays and kiosks (kiosk/fleet.sls)
#   kiosk:relays                   a kiosk's masters, relay ids of ONE campus (kiosk/campus/<campus>.sls)
#   kiosk:campus_keys:<campus>     {master_pem, master_pub, kiosks: {minion id: public key}}:
#                                  the campus's shared relay master key pair and its kiosks' keys,
#                                  written by kiosk.relay into each relay master's pki_dir
#                                  (kiosk/keys/<campus>.sls). It holds a PRIVATE key: target it
#                                  to that campus's relays only, never to kiosks or another
#                                  campus, and never serve it through salt:// (file_roots are
#                                  readable by every minion of a master).
base:
  # The central master's own minion: the database owner account, rules, the
  # salt-api and its eauth, the alert hooks.
  central:
    - match: list
    - kiosk.fleet
    - kiosk.central
  # The relays' own minions: the relay database account (the returner's).
  relay-e1,relay-e2,relay-w1:
    - match: list
    - kiosk.fleet
    - kiosk.relay
  # Each campus's relay master key pair and kiosk keys: that campus's relays only.
  relay-e1,relay-e2:
    - match: list
    - kiosk.keys.east
  relay-w1:
    - match: list
    - kiosk.keys.west
  # Kiosks: only what kiosk.sls needs (no database, API, key or enrolment
  # secrets): the shared fleet facts and their campus's relay list.
  kiosk-*:
    - match: glob
    - kiosk.fleet
    - kiosk.kiosk
  kiosk-e*:
    - match: glob
    - kiosk.campus.east
  kiosk-w*:
    - match: glob
    - kiosk.campus.west
  # FreeIPA one-time passwords (ipa host-add --random): one file per kiosk,
  # served only to that kiosk, e.g. kiosk/enrol/kiosk-e1.sls holding
  #   kiosk: {freeipa: {otp: "..."}}
  # kiosk-e1:
  #   - match: list
  #   - kiosk.enrol.kiosk-e1
