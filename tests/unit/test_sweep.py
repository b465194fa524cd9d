"""
kiosk.sweep's library: what it refuses before nmap starts, and how it reads
hosts. The real nmap sweeps of a network namespace are in
tests/functional/test_sweep.py.
"""

import nmap
import pytest

from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import sweep


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
