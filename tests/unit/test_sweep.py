"""
kiosk.sweep's library with real nmap against addresses in a network namespace
this test creates (198.18.0.0/22, some present, some absent).
"""

import nmap
import pytest

from salt_kiosk.node import sweep
from salt_kiosk.errors import KioskInputError
from tests.netns import namespace

PRESENT = ["198.18.1.10", "198.18.1.11", "198.18.1.20"]
ABSENT = ["198.18.1.12", "198.18.1.21", "198.18.2.99"]


@pytest.fixture(scope="module")
def ns():
    with namespace() as created:
        created.add_many(PRESENT)
        yield created


def test_sweep_finds_present_and_absent_hosts(ns):
    result = sweep.sweep(PRESENT + ABSENT, timeout=20)
    assert result["up"] == PRESENT
    assert result["down"] == sorted(ABSENT, key=lambda a: tuple(int(x) for x in a.split(".")))
    assert (result["up_count"], result["down_count"], result["total"]) == (3, 3, 6)
    assert result["command"].startswith("nmap -oX - ") and "-sn -n" in result["command"]
    assert result["elapsed"] > 0


def test_sweep_with_cidr_and_ports(ns):
    result = sweep.sweep("198.18.1.8/29, 198.18.1.20", timeout=20, ports="22,5900")
    assert result["up"] == PRESENT
    assert result["total"] == 7  # 6 hosts of the /29 plus one address
    assert "-PE -PS22,5900" in result["command"]


@pytest.mark.parametrize(
    "hosts, message",
    [
        ("-iL /etc/passwd", "host '-iL' is not acceptable"),
        (["10.0.0.1;reboot"], "host '10.0.0.1;reboot' is not acceptable"),
        (["example.org"], "host 'example.org' is not acceptable"),
        ([], "hosts is empty"),
        (["10.0.0.0/8"], "over the limit of 4096"),
        (["198.18.1.1", "$(reboot)"], "host '\\$\\(reboot\\)' is not acceptable"),
    ],
)
def test_bad_hosts_refused_before_nmap_starts(monkeypatch, hosts, message):
    started = []
    monkeypatch.setattr(nmap, "PortScanner", lambda *a, **k: started.append(a) or pytest.fail("nmap started"))
    with pytest.raises(KioskInputError, match=message):
        sweep.sweep(hosts)
    assert started == []


def test_bad_timeout_and_ports_refused(monkeypatch):
    monkeypatch.setattr(nmap, "PortScanner", lambda *a, **k: pytest.fail("nmap started"))
    with pytest.raises(KioskInputError, match=r"timeout 0.5 is out of range \(accepted: 1-3600 seconds\)"):
        sweep.sweep(["198.18.1.10"], timeout=0.5)
    with pytest.raises(KioskInputError, match="not a TCP port"):
        sweep.sweep(["198.18.1.10"], ports="22,99999")
    with pytest.raises(KioskInputError, match="over the limit of 16"):
        sweep.sweep(["198.18.1.0/27"], max_hosts=16)


def test_parse_hosts_keeps_exactly_the_addresses_asked_for():
    listed = [f"198.18.1.{i}" for i in range(256)]
    targets, addresses = sweep.parse_hosts(listed)
    assert targets == ["198.18.1.0/24"]  # one nmap target
    assert len(addresses) == 256 and addresses[0] == "198.18.1.0" and addresses[-1] == "198.18.1.255"
    targets, addresses = sweep.parse_hosts(["198.18.1.0/30"])
    assert addresses == ["198.18.1.1", "198.18.1.2"]


def test_a_kiosk_leaving_does_not_take_the_others_along(ns):
    ns.remove(PRESENT[0])
    try:
        assert sweep.sweep(PRESENT, timeout=20)["up"] == PRESENT[1:]
    finally:
        ns.add(PRESENT[0])
