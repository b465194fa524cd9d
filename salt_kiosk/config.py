"""
The ``kiosk:`` section of the master/minion configuration (or pillar).

Keys:

``db`` and ``schema_owner``
    Where the kiosk database lives and who migrates it: see
    :mod:`salt_kiosk.db.store`.

``default_state``
    ``on`` or ``off`` (default ``off``): the desired power state outside every
    power rule.

``wol_port``
    UDP port of Wake-on-LAN packets sent by ``kiosk_power.wake`` and the
    scheduler engine (default 9).

``sweep_timeout``
    Seconds a relay's nmap sweep may take during verification (default 60).

``presence_timeout``
    Seconds to wait for kiosks' minions to answer ``test.ping`` during
    verification (default 10).

``campuses``
    ``{name: {timezone, broadcast, relays}}``: ``timezone`` is a zoneinfo name
    (required), ``broadcast`` the IPv4 address Wake-on-LAN packets go to on that
    campus (optional; the limited broadcast 255.255.255.255 otherwise): the
    broadcast address of the kiosks' subnet, which must be the broadcast
    address of one of each relay's own networks (the relays check), never
    multicast, 0.0.0.0 or a host address; ``relays`` the minion ids of the
    campus relays (syndic nodes). A relay belongs to one campus: listing it
    under two campuses (or twice under one) is refused, naming
    ``kiosk:campuses:<campus>:relays`` and the relay.

The formula (``srv/salt/kiosk``) reads these from pillar as well:

``relay_addresses``
    ``{relay minion id: address}``: the address a relay's master listens on
    and its kiosks connect to (an IPv4 address or a host name).

``relays``
    On a kiosk: its masters, as relay minion ids: the relays of ONE campus
    (normally every relay of it). :func:`kiosk_masters` checks them against
    ``campuses`` and resolves them through ``relay_addresses``.

``campus_keys``
    On a relay: ``{campus: {master_pem, master_pub, kiosks: {minion id:
    public key}}}``, the master key pair every relay master of the campus
    shares (a kiosk with several masters caches one ``minion_master.pub``)
    and the kiosk keys pre-seeded as accepted on each of them.
    :func:`relay_keys` checks the relay's own campus's entry only.
"""

import ipaddress
import re
import zoneinfo

from salt_kiosk import validate
from salt_kiosk.errors import KioskInputError


def _broadcast(where, value):
    """
    A campus's Wake-on-LAN destination: 255.255.255.255 or a plausible
    subnet-directed broadcast (host bits all ones for some prefix of /30 or
    shorter, so its last two bits are set). Multicast, 0.0.0.0/8, reserved
    and host addresses are refused; whether it is the broadcast of a relay's
    own network is checked by the relays themselves (``kiosk.wake``).
    """
    if value is None:
        return None
    accepted = (
        "255.255.255.255 or the broadcast address of the kiosks' subnet, with all host bits set, "
        "such as 10.1.255.255 for 10.1.0.0/16 or 10.1.0.127 for 10.1.0.0/25"
    )
    try:
        address = ipaddress.IPv4Address(str(value).strip())
    except (ipaddress.AddressValueError, ValueError):
        raise KioskInputError(
            f"{where}:broadcast {validate.show(value)} is not an IPv4 address (accepted: {accepted})"
        ) from None
    kind = validate.never_broadcast(address)
    if kind:
        raise KioskInputError(f"{where}:broadcast {validate.show(value)} is {kind} (accepted: {accepted})")
    if int(address) & 0b11 != 0b11:
        raise KioskInputError(
            f"{where}:broadcast {validate.show(value)} is a host address, not a broadcast address "
            f"(accepted: {accepted})"
        )
    return str(address)


def _campus(name, spec):
    where = f"kiosk:campuses:{name}"
    validate.name(name, what="campus name")
    if not isinstance(spec, dict):
        raise KioskInputError(f"{where} must be a mapping with timezone, broadcast, relays")
    unknown = set(spec) - {"timezone", "broadcast", "relays"}
    if unknown:
        raise KioskInputError(f"{where} has unknown key(s) {sorted(unknown)} (accepted: timezone, broadcast, relays)")
    tz = spec.get("timezone")
    if not tz:
        raise KioskInputError(f"{where}:timezone is missing (a zoneinfo name such as Asia/Shanghai)")
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise KioskInputError(
            f"{where}:timezone {tz!r} is not a known time zone (accepted: zoneinfo names "
            "such as Asia/Shanghai or Europe/Berlin)"
        ) from None
    broadcast = _broadcast(where, spec.get("broadcast"))
    relays = spec.get("relays") or []
    if isinstance(relays, str):
        relays = [relays]
    if not isinstance(relays, (list, tuple)):
        raise KioskInputError(f"{where}:relays must be a list of minion ids, not {relays!r}")
    relays = [validate.minion_id(relay) for relay in relays]
    return {"name": name, "timezone": str(tz), "broadcast": broadcast, "relays": relays}


def campuses(opts):
    """
    Return the configured campuses as ``{name: {name, timezone, broadcast, relays}}``.
    """
    section = (opts or {}).get("kiosk") or {}
    raw = section.get("campuses") or {}
    if not isinstance(raw, dict):
        raise KioskInputError(f"kiosk:campuses must be a mapping of campus name to settings, not {raw!r}")
    result = {str(name): _campus(str(name), spec) for name, spec in raw.items()}
    # A relay belongs to one campus: a kiosk lists the relays of its campus as
    # its masters, and a relay's master serves (and holds the keys of) one
    # campus's kiosks.
    owner = {}
    for name, campus in result.items():
        for relay in campus["relays"]:
            if relay in owner:
                also = "twice" if owner[relay] == name else f"and so does kiosk:campuses:{owner[relay]}:relays"
                raise KioskInputError(
                    f"kiosk:campuses:{name}:relays lists relay {validate.show(relay)} {also} "
                    "(accepted: each relay minion id under exactly one campus, once)"
                )
            owner[relay] = name
    return result


def section(opts):
    """The ``kiosk:`` section of ``opts`` (master or minion options); ``{}`` when absent."""
    return (opts or {}).get("kiosk") or {}


def with_pillar(opts, pillar):
    """
    A copy of ``opts`` whose ``kiosk:`` section is the config's with the
    pillar's ``kiosk:`` keys on top (pillar wins, key by key): how every state
    reads its settings, so a setting can live in either place.
    """
    merged = dict(opts or {})
    settings = dict(section(opts))
    pillar_section = (pillar or {}).get("kiosk")
    if isinstance(pillar_section, dict):
        settings.update(pillar_section)
    merged["kiosk"] = settings
    return merged


def default_state(opts):
    """
    Return the configured default power state (``on``/``off``).
    """
    section = (opts or {}).get("kiosk") or {}
    return validate.power_state(section.get("default_state", "off"))


# ---------------------------------------------------------------------------
# Several relays per campus (multi-master kiosks): what the formula reads from
# pillar on a kiosk (kiosk:relays) and on a relay (kiosk:campus_keys).

#: At most this many relays in a kiosk's ``kiosk:relays``.
MAX_KIOSK_RELAYS = 16
#: At most this many kiosk keys in one ``kiosk:campus_keys:<campus>:kiosks``.
MAX_CAMPUS_KIOSKS = 10000
#: The longest key text read (a 4096-bit RSA private key in PEM is about 3.3 kB).
MAX_KEY_CHARS = 16384
#: The smallest RSA key accepted (Salt's own minimum ``keysize``).
MIN_KEY_BITS = 2048

PUBLIC_KEY_ACCEPTED = (
    f"an RSA public key of at least {MIN_KEY_BITS} bits in PEM, as a minion's minion.pub or a master's "
    "master.pub holds it: -----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----"
)
PRIVATE_KEY_ACCEPTED = (
    f"an unencrypted RSA private key of at least {MIN_KEY_BITS} bits in PEM, as a master's master.pem "
    "holds it: -----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----"
)
ADDRESS_ACCEPTED = "an IPv4 address or a host name, such as 10.1.0.2 or relay-e1.hospital.example"

_PUBLIC_PEM_RE = re.compile(r"-----BEGIN PUBLIC KEY-----\n(?:[A-Za-z0-9+/=]{1,76}\n)+-----END PUBLIC KEY-----\n")
_PRIVATE_PEM_RE = re.compile(
    r"-----BEGIN (RSA )?PRIVATE KEY-----\n(?:[A-Za-z0-9+/=]{1,76}\n)+-----END \1PRIVATE KEY-----\n"
)
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}\Z){_HOST_LABEL}(?:\.{_HOST_LABEL})*")


def _pem_text(value):
    """``value`` with LF line ends, no indentation and one final newline; None when it is no short string."""
    if not isinstance(value, str) or len(value) > MAX_KEY_CHARS:
        return None
    return "\n".join(line.strip() for line in value.strip().splitlines()) + "\n"


def public_key(value, where):
    """
    Return ``value``, an RSA public key in PEM (SubjectPublicKeyInfo, what
    Salt writes into minion.pub and master.pub), as the text to write: LF
    line ends and one final newline (Salt compares keys after the same
    cleaning). Raise :class:`KioskInputError` naming ``where`` otherwise;
    the value itself is never quoted.
    """
    return _public_key(value, where)[0]


def _rsa_key(value, where, private):
    """``(text, key)`` of a PEM RSA key of at least MIN_KEY_BITS bits, public or ``private``."""
    from cryptography.exceptions import UnsupportedAlgorithm  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import rsa  # pylint: disable=import-outside-toplevel

    pattern, kind = (_PRIVATE_PEM_RE, rsa.RSAPrivateKey) if private else (_PUBLIC_PEM_RE, rsa.RSAPublicKey)
    text = _pem_text(value)
    key = None
    if text is not None and pattern.fullmatch(text):
        try:
            if private:
                key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
            else:
                key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, TypeError, UnsupportedAlgorithm):
            key = None
    if not isinstance(key, kind) or key.key_size < MIN_KEY_BITS:
        # Never quote the value: a private key is a secret, even when it is a bad one.
        if private:
            raise KioskInputError(f"{where} is not a PEM private key (accepted: {PRIVATE_KEY_ACCEPTED})")
        raise KioskInputError(f"{where} is not a PEM public key (accepted: {PUBLIC_KEY_ACCEPTED})")
    return text, key


def _public_key(value, where):
    return _rsa_key(value, where, private=False)


def _private_key(value, where):
    return _rsa_key(value, where, private=True)


def _address(value, where):
    """A relay's address: an IPv4 address (not 0.0.0.0) or a host name."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        address = ipaddress.IPv4Address(text)
    except (ipaddress.AddressValueError, ValueError):
        address = None
    if address is not None and not address.is_unspecified and not address.is_multicast:
        return str(address)
    if address is None and _HOSTNAME_RE.fullmatch(text) and not re.fullmatch(r"[0-9.]+", text):
        return text
    raise KioskInputError(f"{where} {validate.show(value)} is not a relay address (accepted: {ADDRESS_ACCEPTED})")


def _relays_by_campus(known):
    """``east: relay-e1, relay-e2; west: relay-w1`` for messages."""
    return "; ".join(f"{name}: {', '.join(c['relays']) or '(none)'}" for name, c in known.items()) or "none configured"


def kiosk_masters(opts):
    """
    A kiosk's masters, from ``kiosk:relays`` (relay minion ids), checked
    against ``kiosk:campuses`` and resolved through ``kiosk:relay_addresses``:
    ``{"campus": name, "relays": [ids], "addresses": [addresses]}`` in the
    listed order. Every relay must belong to one and the same campus (a kiosk
    cannot fail over to a relay of another campus: that relay's master has
    another key pair and another campus's kiosk keys, and Wake-on-LAN does not
    cross subnets).
    """
    settings = section(opts)
    where = "kiosk:relays"
    raw = settings.get("relays")
    if isinstance(raw, str):
        raw = [raw]
    if not raw:
        raise KioskInputError(
            f"{where} is missing (accepted: the minion ids of the relays of this kiosk's campus, "
            "every one of them, such as [relay-e1, relay-e2])"
        )
    if not isinstance(raw, (list, tuple)):
        raise KioskInputError(f"{where} must be a list of relay minion ids, not {validate.show(raw)}")
    validate.check_count(raw, where, MAX_KIOSK_RELAYS)
    relays = []
    for item in raw:
        try:
            relay = validate.minion_id(item)
        except KioskInputError as exc:
            raise KioskInputError(f"{where}: {exc}") from None
        if relay in relays:
            raise KioskInputError(f"{where} lists relay {validate.show(relay)} twice (accepted: each relay once)")
        relays.append(relay)
    known = campuses(opts)
    owner = {relay: name for name, campus in known.items() for relay in campus["relays"]}
    accepted = f"the relays of one campus of kiosk:campuses ({_relays_by_campus(known)})"
    for relay in relays:
        if relay not in owner:
            raise KioskInputError(
                f"{where} names {validate.show(relay)}, which is a relay of no campus (accepted: {accepted})"
            )
    found = sorted({owner[relay] for relay in relays})
    if len(found) > 1:
        mixed = ", ".join(f"{relay} ({owner[relay]})" for relay in relays)
        raise KioskInputError(
            f"{where} mixes the relays of campuses {' and '.join(found)}: {mixed} (accepted: {accepted})"
        )
    table = settings.get("relay_addresses") or {}
    if not isinstance(table, dict):
        raise KioskInputError(
            f"kiosk:relay_addresses must be a mapping of relay minion id to address, not {validate.show(table)}"
        )
    addresses = []
    for relay in relays:
        if table.get(relay) in (None, ""):
            raise KioskInputError(
                f"kiosk:relay_addresses:{relay} is missing: the address relay {relay}'s master listens on "
                f"(accepted: {ADDRESS_ACCEPTED})"
            )
        address = _address(table[relay], f"kiosk:relay_addresses:{relay}")
        if address in addresses:
            raise KioskInputError(
                f"kiosk:relay_addresses:{relay} {validate.show(address)} is the address of another relay in "
                f"{where} too (accepted: each relay its own address)"
            )
        addresses.append(address)
    return {"campus": found[0], "relays": relays, "addresses": addresses}


def relay_keys(opts, relay):
    """
    The key material relay ``relay`` writes into its master's pki_dir, from
    its OWN campus's entry of ``kiosk:campus_keys`` (any other campus's entry
    is ignored, not even read):
    ``{"campus", "relays", "master_pem", "master_pub", "kiosks": {minion id: public key}}``
    (keys as the text to write, or None for no shared key pair).

    The pair is required when the campus has more than one relay (their
    masters must share it: a kiosk caches one ``minion_master.pub``) and
    optional otherwise; ``master_pub`` must be the public half of
    ``master_pem``. Kiosk ids must be valid minion ids (they become file
    names) and no relay's. Everything is checked before anything is
    returned, so a caller that writes only on success has no partial effect.
    Messages name the setting and never quote a key.
    """
    relay = validate.minion_id(relay)
    known = campuses(opts)
    mine = [name for name, campus in known.items() if relay in campus["relays"]]
    if not mine:
        raise KioskInputError(
            f"relay {validate.show(relay)} is in no campus (accepted: its minion id under "
            "kiosk:campuses:<campus>:relays)"
        )
    campus = mine[0]
    relays = known[campus]["relays"]
    where = f"kiosk:campus_keys:{campus}"
    result = {"campus": campus, "relays": relays, "master_pem": None, "master_pub": None, "kiosks": {}}
    table = section(opts).get("campus_keys") or {}
    if not isinstance(table, dict):
        raise KioskInputError(
            f"kiosk:campus_keys must be a mapping of campus name to {{master_pem, master_pub, kiosks}}, "
            f"not {validate.show(table)}"
        )
    entry = table.get(campus)
    shared = (
        f"campus {campus} has {len(relays)} relays ({', '.join(relays)}), whose masters must share one key pair: "
        "a kiosk caches a single minion_master.pub"
    )
    if entry is None:
        if len(relays) > 1:
            raise KioskInputError(f"{where} is missing: {shared} (accepted: {{master_pem, master_pub, kiosks}})")
        return result
    if not isinstance(entry, dict):
        raise KioskInputError(f"{where} must be a mapping with master_pem, master_pub, kiosks")
    unknown = sorted(str(key) for key in set(entry) - {"master_pem", "master_pub", "kiosks"})
    if unknown:
        raise KioskInputError(
            f"{where} has unknown key(s) {validate.show(unknown)} (accepted: master_pem, master_pub, kiosks)"
        )
    pem, pub = entry.get("master_pem"), entry.get("master_pub")
    if pem is None or pub is None:
        if len(relays) > 1 or (pem is None) != (pub is None):
            missing = "master_pem" if pem is None else "master_pub"
            raise KioskInputError(
                f"{where}:{missing} is missing (accepted: both master_pem and master_pub, one key pair"
                + (f"; {shared})" if len(relays) > 1 else ", or neither)")
            )
    else:
        result["master_pem"], private = _private_key(pem, f"{where}:master_pem")
        result["master_pub"], public = _public_key(pub, f"{where}:master_pub")
        if private.public_key().public_numbers() != public.public_numbers():
            raise KioskInputError(
                f"{where}:master_pub is not the public half of {where}:master_pem (accepted: the master.pub "
                "and master.pem of one key pair, such as both files of one relay master's pki_dir)"
            )
    kiosks = entry.get("kiosks")
    if kiosks is None:
        kiosks = {}
    if not isinstance(kiosks, dict):
        raise KioskInputError(
            f"{where}:kiosks must be a mapping of kiosk minion id to its public key, not {validate.show(kiosks)}"
        )
    validate.check_count(list(kiosks), f"{where}:kiosks", MAX_CAMPUS_KIOSKS)
    all_relays = {name: c for c in known.values() for name in c["relays"]}
    for raw_id in sorted(kiosks, key=str):
        try:
            kiosk = validate.minion_id(raw_id)
        except KioskInputError as exc:
            raise KioskInputError(f"{where}:kiosks: {exc}") from None
        if kiosk in result["kiosks"]:
            raise KioskInputError(f"{where}:kiosks lists {validate.show(kiosk)} twice (accepted: each id once)")
        if kiosk in all_relays:
            raise KioskInputError(
                f"{where}:kiosks:{kiosk} is a relay (kiosk:campuses:{all_relays[kiosk]['name']}:relays), not a kiosk "
                "(accepted: kiosk minion ids; a relay's own minion key is accepted on its own master)"
            )
        result["kiosks"][kiosk] = public_key(kiosks[raw_id], f"{where}:kiosks:{kiosk}")
    return result
