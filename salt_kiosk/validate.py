"""
Validation and normalisation of the values operators type: MAC and IPv4
addresses, names, ports and on/off states.

Every function either returns the normalised value or raises
:class:`~salt_kiosk.errors.KioskInputError` with a message that names the bad
value and says what is accepted.
"""

import ipaddress
import re

from salt_kiosk.errors import KioskInputError

MAC_FORMATS = "aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff or aabbccddeeff"

_MAC_PATTERNS = (
    re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$"),
    re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$"),
    re.compile(r"^[0-9a-f]{12}$"),
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Salt minion ids: anything printable without whitespace or path separators.
_MINION_ID_RE = re.compile(r"^[^\s/\\]{1,255}$")

_ON = {"on", "true", "yes", "1"}
_OFF = {"off", "false", "no", "0"}


def mac(value):
    """
    Return ``value`` as a lower-case colon-separated MAC address.
    """
    text = str(value).strip().lower() if value is not None else ""
    if not any(p.match(text) for p in _MAC_PATTERNS):
        raise KioskInputError(f"{value!r} is not a MAC address (accepted: {MAC_FORMATS})")
    digits = re.sub(r"[^0-9a-f]", "", text)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def ipv4(value):
    """
    Return ``value`` as a dotted-quad IPv4 address string.
    """
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except (ipaddress.AddressValueError, ValueError):
        raise KioskInputError(
            f"{value!r} is not an IPv4 address (accepted: dotted quad such as 10.1.0.21)"
        ) from None


def name(value, what="name"):
    """
    Return ``value`` if it is a valid code/campus/group name.
    """
    text = "" if value is None else str(value).strip()
    if not _NAME_RE.match(text):
        raise KioskInputError(
            f"{value!r} is not a valid {what} (accepted: 1-64 characters of letters, "
            "digits, '_', '.', '-', starting with a letter or digit)"
        )
    return text


def minion_id(value):
    """
    Return ``value`` if it can be a Salt minion id.
    """
    text = "" if value is None else str(value).strip()
    if not _MINION_ID_RE.match(text):
        raise KioskInputError(
            f"{value!r} is not a valid minion id (accepted: 1-255 characters without "
            "whitespace or slashes)"
        )
    return text


def port(value):
    """
    Return ``value`` as a TCP port number (1-65535).
    """
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        number = None
    if number is None or not 1 <= number <= 65535 or isinstance(value, bool):
        raise KioskInputError(f"{value!r} is not a TCP port (accepted: an integer 1-65535)")
    return number


def power_state(value):
    """
    Return ``"on"`` or ``"off"``.

    The Salt CLI and pillar parse values as YAML 1.1, where ``on``/``off`` arrive
    as ``True``/``False``; both spellings are accepted.
    """
    if value is True:
        return "on"
    if value is False:
        return "off"
    text = str(value).strip().lower()
    if text in _ON:
        return "on"
    if text in _OFF:
        return "off"
    raise KioskInputError(f"{value!r} is not a power state (accepted: on or off)")
