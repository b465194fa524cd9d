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
    campus relays (syndic nodes).
"""

import ipaddress
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
    return {str(name): _campus(str(name), spec) for name, spec in raw.items()}


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
