#!py
"""
The formula's pillar checks, done by the salt-kiosk library itself
(salt_kiosk.config), so that the formula accepts exactly what the library
accepts: minion ids through salt_kiosk.validate.minion_id, PEM keys loaded
with cryptography, relay lists against kiosk:campuses.

Not a state file (no .sls): map.jinja's ``checks``. A role renders it with the
py renderer, passing this node's kiosk pillar::

    salt['slsutil.renderer'](checks, default_renderer='py',
                             check='relay_keys', settings=kiosk, minion=grains['id'])

and gets ``{"error": message}`` (the message names the pillar key and what
is accepted, never a key's text) or ``{"result": data}``. It never raises: a
render error would print a traceback instead of the message. Nothing here is
secret; the key material only passes through memory.

check:
  relay_keys     salt_kiosk.config.relay_keys: the relay's own campus's
                 kiosk:campus_keys entry (shared master key pair, kiosk keys)
  kiosk_masters  salt_kiosk.config.kiosk_masters: the kiosk's kiosk:relays,
                 resolved to its campus and the relays' addresses
"""

CHECKS = ("relay_keys", "kiosk_masters")


def run():
    # check, settings and minion are set on this module by the py renderer
    # (the keyword arguments of slsutil.renderer).
    name = globals().get("check")
    if name not in CHECKS:
        return {"error": "unknown formula check {!r} (accepted: {})".format(name, ", ".join(CHECKS))}
    try:
        from salt_kiosk import config
        from salt_kiosk.errors import KioskInputError
    except ImportError as exc:
        return {"error": "the salt-kiosk library is not importable on this minion ({}): pip install salt-kiosk".format(exc)}
    opts = {"kiosk": dict(globals().get("settings") or {})}
    try:
        if name == "relay_keys":
            data = config.relay_keys(opts, globals().get("minion"))
        else:
            data = config.kiosk_masters(opts)
    except KioskInputError as exc:
        return {"error": str(exc)}
    return {"result": data}
