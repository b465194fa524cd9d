"""
kiosk.sweep's library with real nmap against addresses in a network namespace
this test creates (198.18.0.0/22, some present, some absent). Needs root,
iproute2 and nmap (tests/netns.py). The checks that need neither are in
tests/unit/test_sweep.py.
"""

import pytest

from salt_kiosk.node import sweep
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


def test_a_kiosk_leaving_does_not_take_the_others_along(ns):
    ns.remove(PRESENT[0])
    try:
        assert sweep.sweep(PRESENT, timeout=20)["up"] == PRESENT[1:]
    finally:
        ns.add(PRESENT[0])
