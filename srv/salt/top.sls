# Roles come from the kiosk grain (kiosk:role in each minion's config).
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
