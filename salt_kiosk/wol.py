"""
Wake-on-LAN: argument checking and sending magic packets with the ``wakeonlan``
package.

Everything is validated before the first packet leaves: a list with one bad MAC
sends nothing.
"""

import ipaddress
import socket

import wakeonlan

from salt_kiosk import validate
from salt_kiosk.errors import KioskInputError

LIMITED_BROADCAST = "255.255.255.255"
MAX_REPEAT = 20


def parse_macs(macs):
    """
    Return the MACs in ``macs`` (one string, a comma-separated string or a list)
    normalised and de-duplicated in order. A bad entry refuses the whole list.
    """
    if isinstance(macs, str):
        items = [m for m in (part.strip() for part in macs.split(",")) if m]
    elif isinstance(macs, (list, tuple, set)):
        items = list(macs)
    else:
        raise KioskInputError(f"macs must be a MAC address or a list of them, not {macs!r}")
    if not items:
        raise KioskInputError("no MAC address given (accepted: one MAC or a list of MACs)")
    normalised = []
    for index, item in enumerate(items):
        try:
            mac = validate.mac(item)
        except KioskInputError as exc:
            raise KioskInputError(f"macs[{index}]: {exc}; nothing was sent") from None
        if mac not in normalised:
            normalised.append(mac)
    return normalised


def parse_broadcast(value):
    """
    Return the IPv4 destination for magic packets. ``None`` means the limited
    broadcast 255.255.255.255; an address is used as is (subnet-directed
    broadcast such as 10.1.255.255); a CIDR block such as ``10.1.0.0/16`` means
    its broadcast address.
    """
    if value in (None, ""):
        return LIMITED_BROADCAST
    text = str(value).strip()
    try:
        if "/" in text:
            return str(ipaddress.IPv4Network(text, strict=False).broadcast_address)
        return str(ipaddress.IPv4Address(text))
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
        raise KioskInputError(
            f"broadcast {value!r} is not an IPv4 address (accepted: an address such as "
            "10.1.255.255, a CIDR block such as 10.1.0.0/16, or nothing for 255.255.255.255)"
        ) from None


def parse_repeat(value):
    """Return ``value`` as a packet count per MAC (1-20)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or str(number) != str(value).strip() or not 1 <= number <= MAX_REPEAT:
        raise KioskInputError(f"repeat {value!r} is out of range (accepted: an integer 1-{MAX_REPEAT})")
    return number


def send(macs, broadcast=None, port=9, repeat=3, source=None):
    """
    Send ``repeat`` magic packets per MAC to ``broadcast``:``port`` over UDP,
    from the local address ``source`` when given. Return ``{mac: {"address",
    "port", "packets"}}``.
    """
    mac_list = parse_macs(macs)
    address = parse_broadcast(broadcast)
    port = validate.port(port)
    repeat = parse_repeat(repeat)
    if source is not None:
        source = validate.ipv4(source)
    packets = [(mac, wakeonlan.create_magic_packet(mac)) for mac in mac_list]
    sent = {mac: 0 for mac in mac_list}
    sock = wakeonlan.create_socket(host=address, port=port, interface=source, family=socket.AF_INET)
    try:
        for _round in range(repeat):
            for mac, packet in packets:
                sock.send(packet)
                sent[mac] += 1
    finally:
        sock.close()
    return {mac: {"address": address, "port": port, "packets": sent[mac]} for mac in mac_list}


def is_magic_packet(payload, mac):
    """True when ``payload`` is the magic packet of ``mac`` (6 x 0xFF, then the MAC 16 times)."""
    raw = bytes.fromhex(validate.mac(mac).replace(":", ""))
    return payload == b"\xff" * 6 + raw * 16
