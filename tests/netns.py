"""
Test hosts in a network namespace: a veth pair whose host side sits in
198.18.0.0/22 and whose namespace side carries the "present" addresses, so
that nmap on the host sees exactly those as up.
"""

import contextlib
import ipaddress
import subprocess
import uuid

NETWORK = ipaddress.IPv4Network("198.18.0.0/22")
HOST_SIDE = "198.18.0.1"
PREFIXLEN = NETWORK.prefixlen


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


class Namespace:
    def __init__(self, name, host_if, ns_if, prefixlen=PREFIXLEN):
        self.name = name
        self.host_if = host_if
        self.ns_if = ns_if
        self.prefixlen = prefixlen

    def add(self, address):
        sh("ip", "netns", "exec", self.name, "ip", "addr", "add", f"{address}/{self.prefixlen}", "dev", self.ns_if)

    def remove(self, address):
        sh(
            "ip",
            "netns",
            "exec",
            self.name,
            "ip",
            "addr",
            "del",
            f"{address}/{self.prefixlen}",
            "dev",
            self.ns_if,
            check=False,
        )

    def remove_command(self, address):
        """The argument list that takes ``address`` off the namespace."""
        return ["ip", "netns", "exec", self.name, "ip", "addr", "del", f"{address}/{self.prefixlen}", "dev", self.ns_if]

    def add_many(self, addresses):
        batch = "\n".join(f"addr add {a}/{self.prefixlen} dev {self.ns_if}" for a in addresses)
        subprocess.run(
            ["ip", "netns", "exec", self.name, "ip", "-batch", "-"],
            input=batch,
            text=True,
            check=True,
            capture_output=True,
        )


@contextlib.contextmanager
def namespace(prefixlen=PREFIXLEN):
    """Create the namespace and veth pair (host side 198.18.0.1/prefixlen); remove them afterwards."""
    tag = uuid.uuid4().hex[:6]
    name, host_if, ns_if = f"kiosk-{tag}", f"kh{tag}", f"kn{tag}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", name)
        sh("ip", "addr", "add", f"{HOST_SIDE}/{prefixlen}", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        # Taking one address away must not take the others of its subnet along
        # (Linux drops secondary addresses with their primary otherwise).
        sh("ip", "netns", "exec", name, "sysctl", "-qw", f"net.ipv4.conf.{ns_if}.promote_secondaries=1")
        sh("ip", "netns", "exec", name, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield Namespace(name, host_if, ns_if, prefixlen)
    finally:
        sh("ip", "link", "del", host_if, check=False)
        sh("ip", "netns", "del", name, check=False)
