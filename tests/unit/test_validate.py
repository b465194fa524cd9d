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


def test_minion_ids_are_host_name_characters():
    assert validate.minion_id(" kiosk-e1.campus.example ") == "kiosk-e1.campus.example"
    for bad in ("kiosk\x00e1", "kiosk'e1", "kiosk-\u202ee1", "-kiosk", "kiosk/e1", "k" * 256, None):
        with pytest.raises(KioskInputError, match="is not a valid minion id"):
            validate.minion_id(bad)


def test_minion_globs():
    assert validate.minion_glob("kiosk-e[12]*") == "kiosk-e[12]*"
    for bad in ("kiosk e*", "k" * 256, "kiosk-\u202e*", ""):
        with pytest.raises(KioskInputError, match="is not a minion id glob"):
            validate.minion_glob(bad)


def test_whole_and_finite_numbers():
    assert validate.whole_number("42", "n", 1, 100) == 42
    assert validate.whole_number(7, "n", 1, 100) == 7
    for bad in (True, 1.0, float("nan"), float("inf"), "1e2", "0x10", "", None, 101):
        with pytest.raises(KioskInputError, match=r"n .* is out of range \(accepted: an integer 1-100\)"):
            validate.whole_number(bad, "n", 1, 100)
    assert validate.finite_number("2.5", "t", 1, 10) == 2.5
    for bad in (float("nan"), "nan", float("inf"), "-inf", "Infinity", True, 0.5, "x", None):
        with pytest.raises(KioskInputError, match=r"t .* is out of range \(accepted: a number 1-10\)"):
            validate.finite_number(bad, "t", 1, 10)


def test_lists_are_capped_before_they_are_read():
    assert validate.check_count([1, 2], "items", 2) == [1, 2]
    with pytest.raises(
        KioskInputError, match=r"items has 3 entries, over the limit of 2 \(accepted: at most 2 entries"
    ):
        validate.check_count([1, 2, 3], "items", 2)


def test_error_values_are_shown_short_and_escaped():
    assert validate.show("a\u202eb") == "'a\\u202eb'"
    shown = validate.show("x" * 1000)
    assert len(shown) < 100 and shown.endswith("... (1000 characters)")
