"""
websockify token files for noVNC: one file per campus, ``token: host:port`` per
kiosk, written atomically.

A kiosk's token is its code (codes are already letters, digits, ``_ . -``);
with ``kiosk:vnc_token_secret`` set it becomes ``<code>-<12 hex digits of an
HMAC of the code>``, so tokens cannot be guessed from the kiosk list. Kiosks
without an IP or a VNC port are listed as skipped, with the reason.
"""

import hashlib
import hmac
import os

from salt_kiosk import inventory
from salt_kiosk.errors import KioskInputError
from salt_kiosk.files import write_atomically


def token_for(code, secret=None):
    """The websockify token of kiosk ``code``."""
    if not secret:
        return code
    digest = hmac.new(str(secret).encode(), code.encode(), hashlib.sha256).hexdigest()[:12]
    return f"{code}-{digest}"


def _check_out_dir(out_dir):
    if not isinstance(out_dir, str) or not out_dir or not os.path.isabs(out_dir):
        raise KioskInputError(f"out_dir {out_dir!r} is not an absolute directory path")
    if not os.path.isdir(out_dir):
        raise KioskInputError(f"out_dir {out_dir!r} does not exist or is not a directory")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise KioskInputError(f"out_dir {out_dir!r} is not writable by this process (uid {os.getuid()})")
    return out_dir


def write_tokens(kstore, out_dir, campus=None, secret=None, campuses=None):
    """
    Write ``<out_dir>/<campus>.conf`` for every campus (or only ``campus``).
    Return ``{"files": {campus: path}, "tokens": {campus: {code: "host:port"}},
    "skipped": {code: reason}}``.
    """
    out_dir = _check_out_dir(out_dir)
    kiosks = inventory.list_kiosks(kstore, "*")
    known = sorted(set(campuses or []) | {k["campus"] for k in kiosks})
    if campus is not None:
        if campus not in known:
            raise KioskInputError(f"campus {campus!r} is unknown (known: {', '.join(known) or 'none'})")
        known = [campus]
    result = {"files": {}, "tokens": {}, "skipped": {}}
    for name in known:
        lines = [f"# websockify tokens for campus {name}, written by salt-kiosk (kiosk_vnc.tokens)"]
        tokens = {}
        for kiosk in (k for k in kiosks if k["campus"] == name):
            if not kiosk.get("ip"):
                result["skipped"][kiosk["code"]] = "no IP address in the inventory"
                continue
            if not kiosk.get("vnc_port"):
                result["skipped"][kiosk["code"]] = "no VNC port in the inventory"
                continue
            token = token_for(kiosk["code"], secret)
            target = f"{kiosk['ip']}:{kiosk['vnc_port']}"
            tokens[token] = target
            lines.append(f"{token}: {target}")
        path = os.path.join(out_dir, f"{name}.conf")
        write_atomically(path, "\n".join(lines) + "\n", mode=0o640)
        result["files"][name] = path
        result["tokens"][name] = tokens
    return result
