# Example pillar for a two-campus fleet, split by role. Targets are minion ids
# (lists and globs of ids), never grains: grains are set by the minion itself,
# so a kiosk could claim the relay or central role, while its id is fixed by
# the key the master accepted.
#
# Each master compiles pillar only for its own minions: the central master for
# its own minion, each relay master for the relay's own minion and for the
# kiosks below it. Give each master only the files its minions need:
# kiosk/central.sls stays on the central master; kiosk/fleet.sls,
# kiosk/relay.sls, kiosk/kiosk.sls and the enrolment files of its own kiosks go
# to a relay master.
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
  # Kiosks: only what kiosk.sls needs (no database, API or FreeIPA secrets).
  kiosk-*:
    - match: glob
    - kiosk.kiosk
  # FreeIPA one-time passwords (ipa host-add --random): one file per kiosk,
  # served only to that kiosk, e.g. kiosk/enrol/kiosk-e1.sls holding
  #   kiosk: {freeipa: {otp: "..."}}
  # kiosk-e1:
  #   - match: list
  #   - kiosk.enrol.kiosk-e1
