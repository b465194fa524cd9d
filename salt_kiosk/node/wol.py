"""
Wake-on-LAN: argument checking and sending magic packets with the ``wakeonlan``
package.

Everything is validated before the first packet leaves: a list with one bad MAC
sends nothing. The destination must be a broadcast: the limited broadcast
255.255.255.255 or the broadcast address of one of this node's own IPv4
networks (a subnet-directed broadcast such as 10.1.255.255); another address
(a unicast host, a directed broadcast to a subnet this node is not on) only
with ``allow_unicast=True``. Multicast, 0.0.0.0/8 and the reserved 240.0.0.0/4
are never accepted. A socket error while sending (e.g. ICMP port unreachable
from a unicast host, reported on the next send) is a
:class:`~salt.exceptions.CommandExecutionError` naming the address, never a
traceback.
"""

import ipaddress
import socket

import wakeonlan
from salt.exceptions import CommandExecutionError

from salt_kiosk import validate
from salt_kiosk.errors import KioskInputError

LIMITED_BROADCAST = "255.255.255.255"
MAX_REPEAT = 20
#: The most MACs one call may carry: a whole campus goes in one call from
#: ``kiosk_power.wake``; 4096 matches the sweep's default address limit, and
#: 4096 MACs x 20 repeats stay under 10 MB of packets.
MAX_MACS = 4096
BROADCAST_ACCEPTED = (
    "255.255.255.255 (or nothing), or the broadcast address of one of this node's networks, as an "
    "address such as 10.1.255.255 or a CIDR block such as 10.1.0.0/16"
)


def parse_macs(macs):
    """
    Return the MACs in ``macs`` (one string, a comma-separated string or a list
    of at most 4096) normalised and de-duplicated in order. A bad entry refuses
    the whole list.
    """
    if isinstance(macs, str):
        items = [m for m in (part.strip() for part in macs.split(",")) if m]
    elif isinstance(macs, (list, tuple, set)):
        items = list(macs)
    else:
        raise KioskInputError(f"macs must be a MAC address or a list of them, not {validate.show(macs)}")
    if not items:
        raise KioskInputError("no MAC address given (accepted: one MAC or a list of MACs)")
    validate.check_count(items, "macs", MAX_MACS, suffix="; nothing was sent")
    normalised, seen = [], set()
    for index, item in enumerate(items):
        try:
            mac = validate.mac(item)
        except KioskInputError as exc:
            raise KioskInputError(f"macs[{index}]: {exc}; nothing was sent") from None
        if mac not in seen:
            seen.add(mac)
            normalised.append(mac)
    return normalised


def local_broadcasts():
    """
    ``{broadcast address: network}`` for every IPv4 network of this node's
    interfaces (from :func:`salt.utils.network.interfaces`): the network's
    all-ones address, and the ``brd`` an interface reports when it differs.
    /31 and /32 networks have no broadcast address.
    """
    import salt.utils.network  # pylint: disable=import-outside-toplevel

    found = {}
    for data in (salt.utils.network.interfaces() or {}).values():
        entries = list(data.get("inet") or []) + [e for e in data.get("secondary") or [] if e.get("type") == "inet"]
        for entry in entries:
            try:
                network = ipaddress.IPv4Interface(f"{entry['address']}/{entry['netmask']}").network
            except (KeyError, TypeError, ValueError):
                continue
            if network.prefixlen <= 30:
                found.setdefault(str(network.broadcast_address), str(network))
            if entry.get("broadcast"):
                found.setdefault(str(entry["broadcast"]), str(network))
    return found


def parse_broadcast(value, allow_unicast=False):
    """
    Return the IPv4 destination for magic packets. ``None`` means the limited
    broadcast 255.255.255.255; an address is used as is and a CIDR block such
    as ``10.1.0.0/16`` means its broadcast address. The result must be
    255.255.255.255 or the broadcast address of one of this node's networks,
    unless ``allow_unicast``; multicast, 0.0.0.0/8 and 240.0.0.0/4 (other than
    255.255.255.255) are always refused.
    """
    if value in (None, ""):
        return LIMITED_BROADCAST
    text = str(value).strip()
    try:
        if "/" in text:
            address = ipaddress.IPv4Network(text, strict=False).broadcast_address
        else:
            address = ipaddress.IPv4Address(text)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
        raise KioskInputError(
            f"broadcast {validate.show(value)} is not an IPv4 address (accepted: {BROADCAST_ACCEPTED}); "
            "nothing was sent"
        ) from None
    if str(address) == LIMITED_BROADCAST:
        return LIMITED_BROADCAST
    kind = validate.never_broadcast(address)
    if kind:
        raise KioskInputError(
            f"broadcast {validate.show(value)} is {kind} (accepted: {BROADCAST_ACCEPTED}); nothing was sent"
        )
    if allow_unicast:
        return str(address)
    local = local_broadcasts()
    if str(address) not in local:
        known = ", ".join(f"{net} -> {brd}" for brd, net in sorted(local.items())) or "none found"
        raise KioskInputError(
            f"broadcast {validate.show(value)} is not the broadcast address of any network of this node "
            f"(its networks: {known}) (accepted: {BROADCAST_ACCEPTED}; pass allow_unicast=True to send to "
            "another address); nothing was sent"
        )
    return str(address)


def parse_repeat(value):
    """Return ``value`` as a packet count per MAC (1-20)."""
    return validate.whole_number(value, "repeat", 1, MAX_REPEAT)


def send(macs, broadcast=None, port=9, repeat=3, source=None, allow_unicast=False):
    """
    Send ``repeat`` magic packets per MAC to ``broadcast``:``port`` over UDP,
    from the local address ``source`` when given. Return ``{mac: {"address",
    "port", "packets"}}``. ``allow_unicast`` accepts a destination that is not
    a broadcast address of this node (see :func:`parse_broadcast`).

    A socket error (no such local address, ICMP port unreachable from a
    unicast destination, network unreachable) raises
    :class:`~salt.exceptions.CommandExecutionError` saying how many packets
    had been sent.
    """
    if not isinstance(allow_unicast, bool):
        raise KioskInputError(
            f"allow_unicast {validate.show(allow_unicast)} is not a boolean (accepted: True or False); nothing was sent"
        )
    mac_list = parse_macs(macs)
    address = parse_broadcast(broadcast, allow_unicast=allow_unicast)
    port = validate.port(port)
    repeat = parse_repeat(repeat)
    if source is not None:
        source = validate.ipv4(source)
    packets = [(mac, wakeonlan.create_magic_packet(mac)) for mac in mac_list]
    sent = dict.fromkeys(mac_list, 0)
    total = len(packets) * repeat
    try:
        sock = wakeonlan.create_socket(host=address, port=port, interface=source, family=socket.AF_INET)
    except OSError as exc:
        raise CommandExecutionError(
            f"cannot send magic packets to {address}:{port} from {source or 'the default address'}: "
            f"{exc.strerror or exc}; nothing was sent"
        ) from None
    done = 0
    try:
        for _round in range(repeat):
            for mac, packet in packets:
                sock.send(packet)
                sent[mac] += 1
                done += 1
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, ConnectionRefusedError):
            reason += f" (ICMP port unreachable: {address} is a host with nothing listening on UDP port {port})"
        raise CommandExecutionError(
            f"sending magic packets to {address}:{port} failed after {done} of {total} packets: {reason}"
        ) from None
    finally:
        sock.close()
    return {mac: {"address": address, "port": port, "packets": sent[mac]} for mac in mac_list}


def is_magic_packet(payload, mac):
    """True when ``payload`` is the magic packet of ``mac`` (6 x 0xFF, then the MAC 16 times)."""
    raw = bytes.fromhex(validate.mac(mac).replace(":", ""))
    return payload == b"\xff" * 6 + raw * 16
