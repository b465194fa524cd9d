# Bring this kiosk to the newest release staged on its syndic master.
# Kiosks run it at start (minion config: startup_states: sls, sls_list: [kiosk.release]).
kiosk-release:
  kiosk_release.installed:
    - name: latest
