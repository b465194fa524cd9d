"""
websockify token files for noVNC: one file per campus, ``token: host:port`` per
kiosk, written atomically.

A kiosk's token is its code (codes are already letters, digits, ``_ . -``);
with ``kiosk:vnc_token_secret`` set it becomes ``<code>-<12 hex digits of an
HMAC of the code>``, so tokens cannot be guessed from the kiosk list. Kiosks
without an IP or a VNC port are listed as skipped, with the reason.

Every line is checked again when it is written, whatever the database holds
(a row stored before the inventory was validated may be bad): the code must
be a kiosk code, the IP a dotted-quad IPv4 address, the port 1-65535, the
campus (the file name) a campus name. A kiosk failing any of them is skipped,
with the field and the value (escaped, capped) as the reason, so a file never
holds anything but ``token: a.b.c.d:port`` lines.

The console's noVNC button (:func:`viewer_link`) opens
``kiosk:novnc_url`` (the address of noVNC's ``vnc.html`` behind websockify,
``http://`` or ``https://``) with the kiosk's token in its ``path`` parameter.

Where files go (:func:`token_dir`): only inside ``kiosk:vnc_token_dir`` (master
config; ``out_dir`` defaults to it and must resolve inside it with
``realpath``), and never inside a Salt configuration or key directory (the
directory of the master's ``conf_file``, ``/etc/salt``, ``pki_dir``), even when
``kiosk:vnc_token_dir`` itself points there.
"""

import hashlib
import hmac
import os
import re
import urllib.parse

from salt_kiosk import inventory, validate
from salt_kiosk.errors import KioskInputError
from salt_kiosk.files import write_atomically
from salt_kiosk.inventory import shown

SALT_CONF_DIR = "/etc/salt"
_EXAMPLE_DIR = "/var/lib/kiosk/websockify-tokens"


def token_for(code, secret=None):
    """The websockify token of kiosk ``code``."""
    if not secret:
        return code
    digest = hmac.new(str(secret).encode(), code.encode(), hashlib.sha256).hexdigest()[:12]
    return f"{code}-{digest}"


def _check_out_dir(out_dir, key="out_dir"):
    if not isinstance(out_dir, str) or not out_dir or not os.path.isabs(out_dir) or "\x00" in out_dir:
        raise KioskInputError(f"{key} {shown(out_dir, 200)} is not an absolute directory path")
    if not os.path.isdir(out_dir):
        raise KioskInputError(f"{key} {shown(out_dir, 200)} does not exist or is not a directory")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise KioskInputError(f"{key} {shown(out_dir, 200)} is not writable by this process (uid {os.getuid()})")
    return out_dir


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def salt_dirs(opts):
    """Directories token files never go into: Salt's configuration and key directories (resolved)."""
    dirs = [SALT_CONF_DIR]
    if opts.get("conf_file"):
        dirs.append(os.path.dirname(os.path.abspath(opts["conf_file"])))
    if opts.get("pki_dir"):
        dirs.append(opts["pki_dir"])
    return sorted({os.path.realpath(d) for d in dirs})


def _refuse_salt_dir(opts, real, what):
    for folder in salt_dirs(opts):
        if _inside(real, folder):
            raise KioskInputError(
                f"{what} resolves to {shown(real, 200)}, inside the Salt configuration directory {folder!r}: "
                "token files are never written there (accepted: a directory outside Salt's configuration, e.g. "
                f"{_EXAMPLE_DIR}; set kiosk:vnc_token_dir in the master config)"
            )


def token_dir(opts, out_dir=None):
    """
    The directory token files go to: ``out_dir`` (default ``kiosk:vnc_token_dir``)
    resolved with ``realpath``, inside ``kiosk:vnc_token_dir`` and outside every
    Salt configuration directory. Raise :class:`KioskInputError` naming the
    value and the key to set otherwise.
    """
    base = (opts.get("kiosk") or {}).get("vnc_token_dir")
    if not base:
        raise KioskInputError(
            "kiosk:vnc_token_dir is not set: token files are written only inside it. Set it in the master "
            f"config to the directory websockify reads (e.g. kiosk: {{vnc_token_dir: {_EXAMPLE_DIR}}})"
        )
    if not isinstance(base, str) or not os.path.isabs(base) or "\x00" in base:
        raise KioskInputError(
            f"kiosk:vnc_token_dir {shown(base, 200)} is not an absolute directory path (set it in the master "
            f"config, e.g. kiosk: {{vnc_token_dir: {_EXAMPLE_DIR}}})"
        )
    base_real = os.path.realpath(base)
    _refuse_salt_dir(opts, base_real, f"kiosk:vnc_token_dir {shown(base, 200)}")
    _check_out_dir(base, key="kiosk:vnc_token_dir")
    if out_dir is None or out_dir == "":
        return base_real
    if not isinstance(out_dir, str) or not os.path.isabs(out_dir) or "\x00" in out_dir:
        raise KioskInputError(
            f"out_dir {shown(out_dir, 200)} is not an absolute directory path (accepted: kiosk:vnc_token_dir "
            f"{base!r} or a directory inside it)"
        )
    real = os.path.realpath(out_dir)
    if not _inside(real, base_real):
        raise KioskInputError(
            f"out_dir {shown(out_dir, 200)} resolves to {shown(real, 200)}, outside kiosk:vnc_token_dir "
            f"{base_real!r} (accepted: that directory or one inside it; to write elsewhere set "
            "kiosk:vnc_token_dir in the master config)"
        )
    _refuse_salt_dir(opts, real, f"out_dir {shown(out_dir, 200)}")
    _check_out_dir(real)
    return real


def tokens(opts, kstore, out_dir=None, campus=None, campuses=None):
    """
    Write the token files into :func:`token_dir` (``kiosk:vnc_token_dir`` or
    ``out_dir`` inside it), with ``kiosk:vnc_token_secret``; see :func:`write_tokens`.
    """
    folder = token_dir(opts, out_dir)
    secret = (opts.get("kiosk") or {}).get("vnc_token_secret")
    return write_tokens(kstore, folder, campus=campus, secret=secret, campuses=campuses)


def _checked_line(kiosk):
    """
    ``(code, "ip:port", None)`` from a kiosk's inventory row, each value
    checked and in its normal form, or ``(None, None, reason)``.
    """
    checks = (
        ("code", lambda v: validate.name(v, what="kiosk code")),
        ("ip", validate.ipv4),
        ("vnc_port", validate.port),
    )
    good = {}
    for field, check in checks:
        value = kiosk.get(field)
        try:
            good[field] = check(value)
            if good[field] != value:  # " E01", "5900\n" ...: not what a clean row holds
                raise KioskInputError(f"{value!r} is not in its normal form")
        except KioskInputError:
            return (
                None,
                None,
                (
                    f"{field} {shown(value)} in the inventory is not valid; nothing written for this "
                    "kiosk (fix the inventory: salt-run kiosk_inventory.import_csv)"
                ),
            )
    return good["code"], f"{good['ip']}:{good['vnc_port']}", None


def write_tokens(kstore, out_dir, campus=None, secret=None, campuses=None):
    """
    Write ``<out_dir>/<campus>.conf`` for every campus (or only ``campus``).
    Return ``{"files": {campus: path}, "tokens": {campus: {code: "host:port"}},
    "skipped": {code: reason}}``.
    """
    out_dir = _check_out_dir(out_dir)
    kiosks = inventory.list_kiosks(kstore, "*")
    known = sorted(set(campuses or []) | {k["campus"] for k in kiosks if isinstance(k["campus"], str)})
    if campus is not None:
        if campus not in known:
            raise KioskInputError(
                f"campus {shown(campus)} is unknown (known: {', '.join(map(shown, known)) or 'none'})"
            )
        known = [campus]
    result = {"files": {}, "tokens": {}, "skipped": {}}
    for name in known:
        members = [k for k in kiosks if k["campus"] == name]
        try:
            if validate.name(name, what="campus name") != name:
                raise KioskInputError(f"{name!r} is not in its normal form")
        except KioskInputError:
            for kiosk in members:
                result["skipped"][_key(kiosk)] = (
                    f"campus {shown(name)} is not a valid campus name; no token file written for it (fix the inventory)"
                )
            continue
        lines = [f"# websockify tokens for campus {name}, written by salt-kiosk (kiosk_vnc.tokens)"]
        tokens = {}
        for kiosk in members:
            if not kiosk.get("ip"):
                result["skipped"][_key(kiosk)] = "no IP address in the inventory"
                continue
            if not kiosk.get("vnc_port"):
                result["skipped"][_key(kiosk)] = "no VNC port in the inventory"
                continue
            code, target, problem = _checked_line(kiosk)
            if problem:
                result["skipped"][_key(kiosk)] = problem
                continue
            token = token_for(code, secret)
            tokens[token] = target
            lines.append(f"{token}: {target}")
        path = os.path.join(out_dir, f"{name}.conf")
        write_atomically(path, "\n".join(lines) + "\n", mode=0o640)
        result["files"][name] = path
        result["tokens"][name] = tokens
    return result


def _key(kiosk):
    """A kiosk's key in ``skipped``: its code, escaped and capped when it is not a valid one."""
    code = kiosk.get("code")
    try:
        if validate.name(code, what="kiosk code") == code:
            return code
    except KioskInputError:
        pass
    return shown(code)


_URL_RE = re.compile(r"^https?://[^\s\"'<>\\`]+$")


def viewer_link(opts, kstore, kiosk):
    """
    ``{"kiosk", "code", "token", "url"}``: the noVNC address that views kiosk
    ``kiosk`` (minion id or code) through websockify, from ``kiosk:novnc_url``
    and the kiosk's token. The kiosk's row is checked as a token line is; a
    kiosk without a valid IP and VNC port is refused with the reason.
    """
    base = (opts.get("kiosk") or {}).get("novnc_url")
    if not base:
        raise KioskInputError(
            "kiosk:novnc_url is not set: set it in the master config to the address of noVNC's vnc.html "
            "(e.g. kiosk: {novnc_url: https://vnc.hospital.example/vnc.html})"
        )
    if not isinstance(base, str) or not _URL_RE.match(base) or validate.unsafe_char(base):
        raise KioskInputError(
            f"kiosk:novnc_url {shown(base, 200)} is not accepted: an http:// or https:// address without "
            "spaces, quotes or angle brackets"
        )
    entry = inventory.find_kiosk(kstore, str(kiosk))
    code, _address, reason = _checked_line(entry)
    if reason is not None:
        raise KioskInputError(f"kiosk {entry['minion_id']}: {reason}")
    token = token_for(code, (opts.get("kiosk") or {}).get("vnc_token_secret"))
    query = urllib.parse.urlencode({"path": f"websockify?token={token}", "autoconnect": "1"})
    joiner = "&" if "?" in base else "?"
    return {"kiosk": entry["minion_id"], "code": code, "token": token, "url": f"{base}{joiner}{query}"}
