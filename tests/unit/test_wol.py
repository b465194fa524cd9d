import socket

import pytest

from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import wol


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def drain(sock, count):
    got = []
    for _ in range(count):
        data, addr = sock.recvfrom(4096)
        got.append((data, addr))
    return got


def test_send_real_packets_to_a_listener(listener):
    port = listener.getsockname()[1]
    result = wol.send(
        ["02:00:00:00:00:01", "0200.0000.0002"], broadcast="127.255.255.255", port=port, repeat=2, source="127.0.0.1"
    )
    assert result == {
        "02:00:00:00:00:01": {"address": "127.255.255.255", "port": port, "packets": 2},
        "02:00:00:00:00:02": {"address": "127.255.255.255", "port": port, "packets": 2},
    }
    packets = drain(listener, 4)
    payloads = [p for p, _a in packets]
    assert sum(wol.is_magic_packet(p, "02:00:00:00:00:01") for p in payloads) == 2
    assert sum(wol.is_magic_packet(p, "02:00:00:00:00:02") for p in payloads) == 2
    assert all(len(p) == 102 and p[:6] == b"\xff" * 6 for p in payloads)
    assert {a[0] for _p, a in packets} == {"127.0.0.1"}


def test_bad_mac_in_list_sends_nothing(listener):
    port = listener.getsockname()[1]
    with pytest.raises(KioskInputError, match=r"macs\[1\]: '02:00:00:00:00' is not a MAC address.*nothing was sent"):
        wol.send(["02:00:00:00:00:01", "02:00:00:00:00"], broadcast="127.255.255.255", port=port)
    listener.settimeout(0.3)
    with pytest.raises(socket.timeout):
        listener.recvfrom(4096)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"broadcast": "10.1.255"}, "broadcast '10.1.255' is not an IPv4 address"),
        ({"broadcast": "fe80::1"}, "is not an IPv4 address"),
        ({"port": 0}, "not a TCP port"),
        ({"port": 70000}, "not a TCP port"),
        ({"repeat": 0}, r"repeat 0 is out of range \(accepted: an integer 1-20\)"),
        ({"repeat": 21}, "repeat 21 is out of range"),
        ({"repeat": "2.5"}, "out of range"),
    ],
)
def test_bad_arguments_refused(kwargs, message):
    with pytest.raises(KioskInputError, match=message):
        wol.send("02:00:00:00:00:01", **kwargs)


def test_broadcast_forms():
    assert wol.parse_broadcast(None) == "255.255.255.255"
    assert wol.parse_broadcast("255.255.255.255") == "255.255.255.255"
    # This node's loopback network 127.0.0.0/8: its broadcast, as an address or a CIDR block.
    assert "127.255.255.255" in wol.local_broadcasts()
    assert wol.parse_broadcast("127.255.255.255") == "127.255.255.255"
    assert wol.parse_broadcast("127.0.0.0/8") == "127.255.255.255"
    # Networks this node is not on: only when the caller says so.
    with pytest.raises(KioskInputError, match="not the broadcast address of any network of this node"):
        wol.parse_broadcast("10.1.255.255")
    assert wol.parse_broadcast("10.1.255.255", allow_unicast=True) == "10.1.255.255"
    assert wol.parse_broadcast("10.1.0.0/16", allow_unicast=True) == "10.1.255.255"
    assert wol.parse_broadcast("10.1.2.3/24", allow_unicast=True) == "10.1.2.255"


def test_parse_macs_forms():
    assert wol.parse_macs("02:00:00:00:00:01, 02-00-00-00-00-01,020000000002") == [
        "02:00:00:00:00:01",
        "02:00:00:00:00:02",
    ]
    with pytest.raises(KioskInputError, match="no MAC address"):
        wol.parse_macs([])
    with pytest.raises(KioskInputError, match="must be a MAC address or a list"):
        wol.parse_macs(42)
