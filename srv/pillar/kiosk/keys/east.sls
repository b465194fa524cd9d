# The east campus's relay master key pair and its kiosks' keys: serve this file
# ONLY to east's relays (top.sls), never to kiosks or another campus's relays.
# It reads /etc/salt/kiosk-keys/east/ on the relay master compiling it (see
# read.jinja); put the same files on every relay master of the campus:
#
#   install -d -m 0700 /etc/salt/kiosk-keys/east/kiosks
#   # the key pair of ONE relay master of the campus, so that kiosks already
#   # trusting that relay keep working (or a new pair: salt-key --gen-keys=master)
#   install -m 0400 /etc/salt/pki/master/master.pem /etc/salt/kiosk-keys/east/
#   install -m 0644 /etc/salt/pki/master/master.pub /etc/salt/kiosk-keys/east/
#   # each kiosk's /etc/salt/pki/minion/minion.pub, named by its minion id
#   install -m 0644 kiosk-xx.pub /etc/salt/kiosk-keys/east/kiosks/kiosk-xx
#
# The pillar it yields (inline works too, in a file only these relays get):
#   kiosk:
#     campus_keys:
#       east:
#         master_pem: "-----BEGIN RSA PRIVATE KEY-----\n..."
#         master_pub: "-----BEGIN PUBLIC KEY-----\n..."
#         kiosks: {kiosk-xx: "-----BEGIN PUBLIC KEY-----\n..."}
{%- from 'kiosk/keys/read.jinja' import campus_keys with context %}
{{ campus_keys('east') }}
