"""
Validation and normalisation of the values operators type: MAC and IPv4
addresses, names, minion ids, ports, on/off states, whole and finite numbers,
and the size of lists.

Every function either returns the normalised value or raises
:class:`~salt_kiosk.errors.KioskInputError` with a message that names the bad
value and says what is accepted.
"""

import ipaddress
import math
import re
import unicodedata

from salt_kiosk.errors import KioskInputError

MAC_FORMATS = "aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff or aabbccddeeff"

_MAC_PATTERNS = (
    re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$"),
    re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$"),
    re.compile(r"^[0-9a-f]{12}$"),
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Minion ids: Salt itself refuses only NUL and path separators, but kiosks
# choose their own ids and those ids end up in logs, consoles, the database,
# target expressions and command lines. Accepted is what host names and FQDNs
# (and Salt's usual ids) are made of: ASCII letters, digits, '.', '_' and '-',
# starting with a letter or digit (never an option-like '-'), at most 255.
MINION_ID_MAX = 255
_MINION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
MINION_ID_ACCEPTED = (
    f"1-{MINION_ID_MAX} ASCII letters, digits, '.', '_' and '-', starting with a letter or digit "
    "(no whitespace, quotes, slashes, control or bidi characters)"
)
# Unicode categories refused in free text shown to people (messages) and in
# anything printed to a log or console: control (Cc, including NUL, DEL and
# C1), format (Cf: bidi overrides and isolates such as U+202E, zero-width
# characters), surrogates, private use, unassigned, line/paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

_ON = {"on", "true", "yes", "1"}
_OFF = {"off", "false", "no", "0"}


def show(value, limit=64):
    """
    ``value`` for an error message: escaped with ``repr`` (a newline shows as
    ``\\n``, a right-to-left override as ``\\u202e``) and capped at about
    ``limit`` characters, so that nothing a message quotes can span lines or
    carry a whole file. Large containers are named by type, never rendered.
    """
    if isinstance(value, str):
        if len(value) > limit:
            return f"{value[:limit]!r}... ({len(value)} characters)"
        return repr(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return repr(value)[:limit]
    text = repr(value) if isinstance(value, (list, tuple, dict)) and len(value) <= 100 else f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + f"... ({type(value).__name__})"


def unsafe_char(text):
    """
    The first character of ``text`` that must not reach a log, console or
    command line (control, bidi/format, separator or unassigned), or None.
    """
    for char in text:
        if unicodedata.category(char) in _UNSAFE_CATEGORIES:
            return char
    return None


def check_count(items, what, limit, note="", suffix=""):
    """
    Refuse a list ``items`` of more than ``limit`` entries (before looking at
    any of them). ``note`` follows the limit (where it is configured),
    ``suffix`` ends the message (what was not done).
    """
    if len(items) > limit:
        raise KioskInputError(
            f"{what} has {len(items)} entries, over the limit of {limit}{note} (accepted: at most {limit} "
            f"entries; split the list){suffix}"
        )
    return items


#: The largest whole number :func:`whole_number` reads (18 decimal digits).
MAX_WHOLE = 10**18 - 1


def whole_number(value, what, low, high, accepted=None, suffix=""):
    """
    Return ``value`` as an int from ``low`` to ``high``: the one bounded-integer
    check of the library. Accepted: ints and strings of decimal digits;
    refused: booleans, floats (also NaN and infinity), anything else.
    """
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,18}\s*", value):
        number = int(value)
    if number is None or not low <= number <= high:
        raise KioskInputError(
            f"{what} {show(value)} is out of range (accepted: {accepted or f'an integer {low}-{high}'}){suffix}"
        )
    return number


def boolean(value, what):
    """
    Return ``value`` as a bool. Accepted: booleans and the strings
    ``true``/``false``/``yes``/``no``/``1``/``0`` (any case), as a CLI or an
    API client may send them; anything else is refused rather than guessed.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise KioskInputError(f"{what} {show(value)} is not a boolean (accepted: True or False)")


def finite_number(value, what, low, high, accepted=None, suffix=""):
    """
    Return ``value`` as a float from ``low`` to ``high``. NaN and infinity
    (also spelled as strings, ``nan``, ``inf``) and booleans are refused.
    """
    number = None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            number = None
    if number is None or not math.isfinite(number) or not low <= number <= high:
        raise KioskInputError(
            f"{what} {show(value)} is out of range (accepted: {accepted or f'a number {low:g}-{high:g}'}){suffix}"
        )
    return number


def mac(value):
    """
    Return ``value`` as a lower-case colon-separated MAC address.
    """
    text = str(value).strip().lower() if value is not None else ""
    if not any(p.match(text) for p in _MAC_PATTERNS):
        raise KioskInputError(f"{show(value)} is not a MAC address (accepted: {MAC_FORMATS})")
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
            f"{show(value)} is not an IPv4 address (accepted: dotted quad such as 10.1.0.21)"
        ) from None


_NEVER_DESTINATIONS = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "an unspecified ('this network') address"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "a multicast address"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "a reserved address"),
)
LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def never_broadcast(address):
    """
    Why the :class:`ipaddress.IPv4Address` ``address`` can never be a
    broadcast destination (0.0.0.0/8, multicast, 240.0.0.0/4 other than
    255.255.255.255), or None.
    """
    if address == LIMITED_BROADCAST:
        return None
    for network, kind in _NEVER_DESTINATIONS:
        if address in network:
            return kind
    return None


def name(value, what="name"):
    """
    Return ``value`` if it is a valid code/campus/group name.
    """
    text = "" if value is None else str(value).strip()
    if not _NAME_RE.match(text):
        raise KioskInputError(
            f"{show(value)} is not a valid {what} (accepted: 1-64 characters of letters, "
            "digits, '_', '.', '-', starting with a letter or digit)"
        )
    return text


def minion_id(value):
    """
    Return ``value`` if it is an acceptable minion id: see
    :data:`MINION_ID_ACCEPTED` (NUL, quotes, whitespace, control and bidi
    characters such as U+202E are refused).
    """
    text = value.strip() if isinstance(value, str) else ("" if value is None else str(value).strip())
    if not _MINION_ID_RE.fullmatch(text):
        raise KioskInputError(f"{show(value)} is not a valid minion id (accepted: {MINION_ID_ACCEPTED})")
    return text


_MINION_GLOB_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]{1,%d}$" % MINION_ID_MAX)


def minion_glob(value):
    """
    Return ``value`` if it is an acceptable shell glob on minion ids (the
    ``GLOB`` of an ``id:GLOB`` target): 1-255 characters of minion-id
    characters and ``* ? [ ] !``.
    """
    text = value.strip() if isinstance(value, str) else ("" if value is None else str(value).strip())
    if not _MINION_GLOB_RE.fullmatch(text):
        raise KioskInputError(
            f"{show(value)} is not a minion id glob (accepted: 1-{MINION_ID_MAX} characters of ASCII letters, "
            "digits, '.', '_', '-' and the glob characters * ? [ ] !)"
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
        raise KioskInputError(f"{show(value)} is not a TCP port (accepted: an integer 1-65535)")
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
    raise KioskInputError(f"{show(value)} is not a power state (accepted: on or off)")
