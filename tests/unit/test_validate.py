import pytest

from salt_kiosk import validate
from salt_kiosk.errors import KioskInputError


@pytest.mark.parametrize(
    "raw",
    ["00:11:22:AA:bb:cc", "00-11-22-aa-bb-cc", "0011.22aa.bbcc", "001122AABBCC", " 00:11:22:aa:bb:cc "],
)
def test_mac_notations_normalise(raw):
    assert validate.mac(raw) == "00:11:22:aa:bb:cc"


@pytest.mark.parametrize("raw", ["00:11:22:aa:bb", "00:11-22:aa:bb:cc", "zz:11:22:aa:bb:cc", "", None, "0011.22aa.bbc"])
def test_bad_mac_names_value_and_formats(raw):
    with pytest.raises(KioskInputError) as exc:
        validate.mac(raw)
    assert repr(raw) in str(exc.value)
    assert "aabb.ccdd.eeff" in str(exc.value)


def test_ipv4():
    assert validate.ipv4(" 10.1.0.21 ") == "10.1.0.21"
    for bad in ("10.1.0.256", "::1", "example.org", "10.1.0.0/24"):
        with pytest.raises(KioskInputError, match="not an IPv4 address"):
            validate.ipv4(bad)


def test_port_bounds():
    assert validate.port("5900") == 5900
    for bad in ("0", "65536", "x", True, "59.5"):
        with pytest.raises(KioskInputError, match="1-65535"):
            validate.port(bad)


def test_power_state_accepts_what_yaml_makes_of_on_off():
    assert validate.power_state(True) == "on"
    assert validate.power_state(False) == "off"
    assert validate.power_state("ON") == "on"
    assert validate.power_state("off") == "off"
    with pytest.raises(KioskInputError, match="accepted: on or off"):
        validate.power_state("standby")


def test_names():
    assert validate.name("east-1") == "east-1"
    with pytest.raises(KioskInputError, match="campus name"):
        validate.name("east campus", what="campus name")
    with pytest.raises(KioskInputError, match="minion id"):
        validate.minion_id("a b")
