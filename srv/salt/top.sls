# Roles come from the kiosk grain (kiosk:role in each minion's config). A grain
# is the minion's own claim, so it only picks which states a node applies to
# itself; what a node may know (db accounts, API, enrolment secrets) comes from
# pillar, which srv/pillar/top.sls targets by minion id. A kiosk claiming
# another role gets that role's states but not its pillar, and they fail
# naming the missing keys.
base:
  'kiosk:role:central':
    - match: grain
    - kiosk.central
  'kiosk:role:relay':
    - match: grain
    - kiosk.relay
  'kiosk:role:kiosk':
    - match: grain
    - kiosk.kiosk
