"""
Liveness sweeps with nmap: ONE nmap process for the whole list of kiosks.

Hosts must be IPv4 addresses or CIDR blocks; anything else (nmap options, file
names, host names, shell characters) is refused before nmap starts, as are
lists larger than ``max_hosts`` addresses (or entries), more than 64 ports,
and timeouts outside 1-3600 seconds (NaN and infinity included).
Host discovery is ``nmap -sn -n``; with ``ports``, TCP SYN probes to those ports
are added (``-PE -PS<ports>``) for kiosks that drop ICMP.
"""

import ipaddress
import time

from salt.exceptions import CommandExecutionError

from salt_kiosk import validate
from salt_kiosk.errors import KioskInputError

DEFAULT_MAX_HOSTS = 4096
DEFAULT_TIMEOUT = 60
MAX_TIMEOUT = 3600
#: TCP ports probed per sweep (``-PS``): a few are enough to find kiosks that
#: drop ICMP; 64 keeps the nmap command line short.
MAX_PORTS = 64
HOSTS_ACCEPTED = "IPv4 addresses such as 10.1.0.21 or CIDR blocks such as 10.1.0.0/24"


def parse_hosts(hosts, max_hosts=DEFAULT_MAX_HOSTS):
    """
    Return ``(targets, addresses)``: the collapsed networks to hand to nmap and
    the sorted list of every address they cover. At most ``max_hosts``
    entries and addresses.
    """
    if isinstance(hosts, str):
        items = [h for h in hosts.replace(",", " ").split() if h]
    elif isinstance(hosts, (list, tuple, set)):
        items = list(hosts)
    else:
        raise KioskInputError(f"hosts must be a list of {HOSTS_ACCEPTED}, not {validate.show(hosts)}")
    if not items:
        raise KioskInputError(f"hosts is empty (accepted: {HOSTS_ACCEPTED})")
    # Every entry covers at least one address: a longer list is over the limit.
    validate.check_count(items, "hosts", max_hosts, note=" (kiosk:sweep_max_hosts)", suffix="; nmap was not started")
    networks = []
    total = 0
    for item in items:
        text = str(item).strip()
        try:
            network = (
                ipaddress.IPv4Network(text, strict=False)
                if "/" in text
                else ipaddress.IPv4Network(str(ipaddress.IPv4Address(text)))
            )
        except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
            raise KioskInputError(
                f"host {validate.show(item)} is not acceptable (accepted: {HOSTS_ACCEPTED}); nmap was not started"
            ) from None
        total += network.num_addresses
        if total > max_hosts:
            raise KioskInputError(
                f"host {item!r} brings the sweep to {total} addresses, over the limit of {max_hosts} "
                "(kiosk:sweep_max_hosts); nmap was not started"
            )
        networks.append(network)
    collapsed = list(ipaddress.collapse_addresses(networks))
    # Exactly the addresses asked for: a CIDR block means its hosts, a single
    # address itself (even when collapsing merged it into a larger block).
    addresses = sorted({addr for net in networks for addr in (net if net.num_addresses <= 2 else net.hosts())})
    return [str(net) if net.num_addresses > 1 else str(net.network_address) for net in collapsed], [
        str(a) for a in addresses
    ]


def parse_ports(ports):
    """The TCP ports to probe (a list or comma-separated, at most 64), sorted and unique."""
    if ports in (None, "", []):
        return []
    items = ports if isinstance(ports, (list, tuple)) else str(ports).split(",")
    validate.check_count(items, "ports", MAX_PORTS, suffix="; nmap was not started")
    return sorted({validate.port(p) for p in items})


def parse_timeout(timeout):
    """Seconds nmap may take: a finite number from 1 to 3600 (default 60)."""
    if timeout in (None, ""):
        return DEFAULT_TIMEOUT
    return validate.finite_number(
        timeout, "timeout", 1, MAX_TIMEOUT, accepted=f"1-{MAX_TIMEOUT} seconds", suffix="; nmap was not started"
    )


def arguments(ports=None):
    """The nmap arguments of a sweep."""
    args = "-sn -n"
    ports = parse_ports(ports)
    if ports:
        args += " -PE -PS" + ",".join(str(p) for p in ports)
    return args


def sweep(hosts, timeout=None, ports=None, max_hosts=DEFAULT_MAX_HOSTS):
    """
    Run one nmap host discovery over ``hosts``; return ``{"up", "down",
    "up_count", "down_count", "total", "elapsed", "command"}``.
    """
    targets, addresses = parse_hosts(hosts, max_hosts=max_hosts)
    timeout = parse_timeout(timeout)
    args = arguments(ports)
    try:
        import nmap  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise CommandExecutionError("python-nmap is not installed (pip install python-nmap)") from None
    try:
        scanner = nmap.PortScanner()
    except nmap.PortScannerError as exc:
        raise CommandExecutionError(f"nmap is not available on this node: {exc}") from None
    started = time.monotonic()
    try:
        scanner.scan(hosts=" ".join(targets), arguments=args, timeout=max(1, int(round(timeout))))
    except nmap.PortScannerTimeout:
        raise CommandExecutionError(
            f"nmap did not finish within {timeout:g}s over {len(addresses)} addresses"
        ) from None
    elapsed = time.monotonic() - started
    wanted = set(addresses)
    up = sorted(
        (h for h in scanner.all_hosts() if scanner[h].state() == "up" and h in wanted), key=ipaddress.IPv4Address
    )
    down = [a for a in addresses if a not in set(up)]
    return {
        "up": up,
        "down": down,
        "up_count": len(up),
        "down_count": len(down),
        "total": len(addresses),
        "elapsed": round(elapsed, 3),
        "command": scanner.command_line(),
    }
