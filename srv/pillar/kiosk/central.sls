# Only for the central master's own minion (see top.sls).
kiosk:
  # The database owner account: creates and upgrades the schema, stores rules,
  # inventory and power events. Its password stays out of pillar: put it in
  # /etc/salt/kiosk-db.secret (mode 0600) on the central master.
  db:
    host: db.hospital.example
    user: kiosk
    password_file: /etc/salt/kiosk-db.secret
    database: kiosk
  # The accounts the formula creates (kiosk_store.account_present) through an
  # administrative connection allowed to create users and grant. The relay
  # account's password file must exist here too (the relays use the same one).
  db_admin:
    host: db.hospital.example
    user: root
    password_file: /etc/salt/kiosk-db-admin.secret
    database: kiosk
  db_accounts:
    kiosk_relay: {role: relay, host: "10.%", password_file: /etc/salt/kiosk-relay-db.secret}
  default_state: "off"
  # What the master of masters may read and write on its own disk.
  import_dirs: [/srv/kiosk/inventory]        # kiosk_inventory.import_csv
  release_sources: [/srv/releases]           # kiosk_release.publish
  vnc_token_dir: /etc/websockify/tokens      # kiosk_vnc.tokens
  rules:
    weekday-hours: {power: "on", days: mon-fri, start: "07:30", end: "18:00", target: "*", priority: 0}
    saturday-clinics: {power: "on", days: sat, start: "08:00", end: "12:00", target: "group:outpatient", priority: 0}
    national-day: {power: "off", dates: ["2026-10-01", "2026-10-02"], start: "00:00", end: "24:00", target: "*", priority: 10}
  # Alert hooks of the power alert reactor, written into the master config
  # (kiosk:alerts); mail is sent by this minion unless mail:minion names another.
  # alerts:
  #   mail: {to: kiosk-ops@hospital.example, profile: smtp}
  #   zabbix_sender: {server: zabbix.hospital.example, host: kiosk-fleet, key: kiosk.power.alert}
  api:
    rest_cherrypy: {port: 8000, ssl_crt: /etc/pki/tls/certs/salt-api.crt, ssl_key: /etc/pki/tls/private/salt-api.key}
    clients: [runner]
    # The fleet console at https://<master>:8000/console (static files from the
    # installed salt_kiosk library; see README "Web console"). False: API only.
    console: True
    # Named runner functions only: "@runner" alone (or "salt.*") would give
    # salt.cmd, i.e. root on the master. Releases, CSV imports and token files
    # (paths on the master) stay on the command line.
    external_auth:
      pam:
        kiosk-viewer:
          - "@runner":
            - kiosk_power.targets
            - kiosk_power.plan
            - kiosk_power.state_at
            - kiosk_power.rule_list
            - kiosk_power.events
            - kiosk_power.engine_status
            - kiosk_sweep.results
            - kiosk_inventory.list
            - kiosk_inventory.fleet
            - kiosk_inventory.campuses
            - kiosk_inventory.history
            - kiosk_inventory.asset
            - kiosk_release.status
            - kiosk_release.list
            - kiosk_jobs.status
            - kiosk_jobs.progress
            - kiosk_jobs.recent
            - kiosk_env.report
            - kiosk_env.series
        kiosk-ops:
          - "@runner":
            - kiosk_power.targets
            - kiosk_power.plan
            - kiosk_power.state_at
            - kiosk_power.rule_list
            - kiosk_power.events
            - kiosk_power.engine_status
            - kiosk_power.wake
            - kiosk_power.shutdown
            - kiosk_power.rule_add
            - kiosk_power.rule_update
            - kiosk_power.rule_remove
            - kiosk_power.rule_import
            - kiosk_power.preview
            - kiosk_vnc.link
            - kiosk_sweep.check
            - kiosk_sweep.verify
            - kiosk_sweep.results
            - kiosk_inventory.list
            - kiosk_inventory.fleet
            - kiosk_inventory.campuses
            - kiosk_inventory.history
            - kiosk_inventory.asset
            - kiosk_inventory.refresh
            - kiosk_release.status
            - kiosk_release.list
            - kiosk_release.rollout
            - kiosk_release.rollback
            - kiosk_jobs.run
            - kiosk_jobs.status
            - kiosk_jobs.progress
            - kiosk_jobs.recent
            - kiosk_env.report
            - kiosk_env.series
          # What kiosk_jobs.run may publish for this user (it checks these rights).
          - "kiosk-*":
            - test.ping
            - kiosk.version
            - kiosk.release
