# Example pillar for a two-campus fleet: every node reads kiosk (the roles pick
# what they need). Serve it from the central master and from every relay master.
base:
  '*':
    - kiosk
