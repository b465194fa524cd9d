"""
Security issue 13, input limits (findings 10 and 11): bad input gets a clear
error naming the value and what is accepted, with nothing sent, run or written.

Everything goes through the real code paths: the command builder and the
``kiosk.shutdown`` execution module (its power command run by a stand-in that
parses the arguments with glibc's getopt_long exactly as systemd's
``shutdown`` does, never by the real ``shutdown``), ``wol.send`` to a
listener on loopback, nmap sweeps of 127.0.0.1, file delivery into a temporary
directory, the rule, target, config and inventory parsers and an SQLite store.
The Wake-on-LAN destination tests, which send inside a network namespace of
their own, are in tests/functional/security/test_input_limits.py.
"""

import datetime
import hashlib
import importlib.util
import os
import stat
import subprocess
import time

import nmap
import pytest

from salt_kiosk import config, inventory, validate
from salt_kiosk.db import store
from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import delivery, sweep, wol
from salt_kiosk.node import shutdown as kshutdown
from salt_kiosk.power import actions as power
from salt_kiosk.power import rules
from tests.conftest import REPO_ROOT

SYSTEMD_SHUTDOWN_OPTS = ["-o", "HPrhkKat:fFc", "-l", "help,halt,poweroff,reboot,kexec,no-wall,show"]


def load_module(relpath, **dunders):
    """Import a loader module file and give it the dunders Salt's loader would."""
    name = "kiosk_test_" + relpath.replace("/", "_").replace(".py", "")
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for key, value in dunders.items():
        setattr(module, key, value)
    return module


# --- finding 10: the shutdown message ------------------------------------------


@pytest.fixture
def stand_in_shutdown(tmp_path):
    """
    ``cmd.run_all`` for the kiosk module that never runs the real shutdown: it
    runs a stand-in that records how glibc's getopt_long, with systemd
    shutdown's option string, reads the arguments (options, then ``--``, then
    the operands: the time and the wall message).
    """
    log = tmp_path / "parsed.txt"
    stub = tmp_path / "shutdown-stand-in"
    stub.write_text(f'#!/bin/sh\nexec getopt {" ".join(SYSTEMD_SHUTDOWN_OPTS)} -- "$@" > "{log}"\n')
    stub.chmod(0o755)
    calls = []

    def run_all(argv, python_shell=False, ignore_retcode=True):
        assert argv[0] == "shutdown", argv  # the built-in command, and only it, is replaced
        calls.append(list(argv))
        done = subprocess.run([str(stub)] + list(argv[1:]), capture_output=True, text=True, check=False)
        return {"retcode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

    def parsed():
        options, _sep, operands = log.read_text().strip().partition(" -- ")
        return options.split(), operands

    return run_all, calls, parsed


@pytest.mark.parametrize("message", ["-k", "-c", "-r", "--no-wall"])
def test_shutdown_message_is_never_an_option(stand_in_shutdown, message):
    run_all, calls, parsed = stand_in_shutdown
    kiosk = load_module(
        "_modules/kiosk.py", __opts__={"kiosk": {}}, __grains__={"kernel": "Linux"}, __salt__={"cmd.run_all": run_all}
    )
    done = kiosk.shutdown(delay=60, message=message)
    assert done["result"] is True
    options, operands = parsed()
    # Only the power-off option; the time and the message stay operands.
    assert options == ["-h"], (calls[-1], options)
    assert operands == f"'+1' '{message}'", (calls[-1], operands)

    # A power tool template with {message} at the start of an argument cannot
    # be protected by us: such a message is refused there, and nothing runs.
    calls.clear()
    tool = load_module(
        "_modules/kiosk.py",
        __grains__={"kernel": "Linux"},
        __salt__={"cmd.run_all": run_all},
        __opts__={"kiosk": {"shutdown_command": ["/usr/local/bin/kiosk-power", "{action}", "{message}"]}},
    )
    with pytest.raises(KioskInputError, match=r"starts with '-' and kiosk:shutdown_command puts it at the start"):
        tool.shutdown(delay=60, message=message)
    assert calls == []


@pytest.mark.parametrize(
    "char",
    ["\u202e", "\u2066", "\u200f", "\u200b", "\ufeff", "\x7f", "\x85", "\x9b", "\u2028"],
    ids=["RLO", "LRI", "RLM", "ZWSP", "BOM", "DEL", "NEL", "CSI", "LSEP"],
)
def test_shutdown_message_refuses_control_and_bidi_characters(stand_in_shutdown, char):
    run_all, calls, _parsed = stand_in_shutdown
    kiosk = load_module(
        "_modules/kiosk.py", __opts__={"kiosk": {}}, __grains__={"kernel": "Linux"}, __salt__={"cmd.run_all": run_all}
    )
    message = f"Closing{char}gninepo"
    with pytest.raises(KioskInputError) as exc:
        kiosk.shutdown(delay=60, message=message)
    text = str(exc.value)
    assert f"U+{ord(char):04X}" in text and "accepted: one line of printable text" in text
    assert char not in text  # shown escaped, safe in a log or console
    assert calls == []
    # The master refuses it too, before anything is published.
    with pytest.raises(KioskInputError, match=f"U\\+{ord(char):04X}"):
        power.shutdown({}, None, "*", message=message, publish=lambda *a: pytest.fail("published"))


# --- finding 11: Wake-on-LAN destination (the sends: tests/functional/security/test_input_limits.py)


def test_campus_broadcast_in_config_must_be_plausible():
    def campus(broadcast):
        return config.campuses({"kiosk": {"campuses": {"east": {"timezone": "UTC", "broadcast": broadcast}}}})

    for bad, why in (
        ("224.0.0.1", "is a multicast address"),
        ("239.255.255.250", "is a multicast address"),
        ("0.0.0.0", "is an unspecified"),
        ("240.0.0.1", "is a reserved address"),
        ("10.1.0.21", "is a host address, not a broadcast address"),
    ):
        with pytest.raises(KioskInputError) as exc:
            campus(bad)
        assert f"kiosk:campuses:east:broadcast '{bad}' {why}" in str(exc.value)
        assert "accepted: 255.255.255.255 or the broadcast address of the kiosks' subnet" in str(exc.value)
    for good in ("10.1.255.255", "10.1.0.127", "127.255.255.255", "255.255.255.255"):
        assert campus(good)["east"]["broadcast"] == good


# --- finding 11: the MAC list ---------------------------------------------------------


MAX_MACS = 4096  # one campus per kiosk.wake call; the sweep's default address limit


def test_mac_list_is_capped(listener_on_loopback):
    sock, port = listener_on_loopback
    macs = [f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}" for i in range(MAX_MACS + 1)]
    with pytest.raises(KioskInputError) as exc:
        wol.send(macs, broadcast="127.255.255.255", port=port, repeat=1, source="127.0.0.1")
    assert f"macs has {MAX_MACS + 1} entries, over the limit of {MAX_MACS}" in str(exc.value)
    assert "nothing was sent" in str(exc.value)
    sock.settimeout(0.3)
    with pytest.raises(OSError):
        sock.recvfrom(4096)
    # As a comma-separated string too.
    with pytest.raises(KioskInputError, match="over the limit"):
        wol.parse_macs(",".join(macs))
    assert len(wol.parse_macs(macs[:MAX_MACS])) == MAX_MACS


def test_mac_deduplication_is_linear(monkeypatch):
    """Count the equality comparisons de-duplication makes: linear, not n*n/2."""
    comparisons = [0]

    class Counted(str):
        __hash__ = str.__hash__

        def __eq__(self, other):
            comparisons[0] += 1
            return str.__eq__(self, other)

    real_mac = validate.mac
    monkeypatch.setattr(validate, "mac", lambda value: Counted(real_mac(value)))
    count = 1000
    macs = [f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}" for i in range(count)]
    started = time.monotonic()
    assert wol.parse_macs(macs + macs[:10]) == macs
    assert comparisons[0] <= 2 * count, f"{comparisons[0]} comparisons for {count} MACs"
    assert time.monotonic() - started < 5


@pytest.fixture
def listener_on_loopback():
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock, sock.getsockname()[1]
    sock.close()


# --- finding 11: NaN and infinity --------------------------------------------------------


@pytest.mark.parametrize("timeout", ["nan", float("nan"), "NaN"])
def test_sweep_timeout_nan_refused(monkeypatch, timeout):
    started = []
    real = nmap.PortScanner

    def recording(*args, **kwargs):
        started.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(nmap, "PortScanner", recording)
    with pytest.raises(KioskInputError) as exc:
        sweep.sweep(["127.0.0.1"], timeout=timeout)
    assert f"timeout {timeout!r} is out of range (accepted: 1-3600 seconds); nmap was not started" == str(exc.value)
    assert started == []
    # Through the execution module as well.
    kiosk = load_module("_modules/kiosk.py", __opts__={"kiosk": {}})
    with pytest.raises(KioskInputError, match="accepted: 1-3600 seconds"):
        kiosk.sweep("127.0.0.1", timeout=timeout)
    assert started == []


def test_nan_and_infinity_refused_wherever_numbers_are_taken():
    nothing = lambda *a: pytest.fail("published")  # noqa: E731
    cases = {
        "power timeout": lambda v: power.check_timeout(v),
        "shutdown delay": lambda v: kshutdown.check_delay(v),
        "shutdown delay (runner)": lambda v: power.shutdown({}, None, "*", delay=v, publish=nothing),
        "wake repeat": lambda v: wol.parse_repeat(v),
        "wake timeout (runner)": lambda v: power.wake({}, None, "*", timeout=v, publish=nothing),
        "events limit": lambda v: power.list_events(None, limit=v),
        "sweep timeout": lambda v: sweep.parse_timeout(v),
    }
    wrong = []
    for what, call in cases.items():
        for value in (float("nan"), float("inf"), float("-inf"), "nan", "inf", "Infinity"):
            try:
                call(value)
            except KioskInputError as exc:
                if repr(value) not in str(exc) or "accepted" not in str(exc):
                    wrong.append(f"{what} {value!r}: unclear error {exc}")
            except Exception as exc:  # pylint: disable=broad-except
                wrong.append(f"{what} {value!r}: {type(exc).__name__}: {exc}")
            else:
                wrong.append(f"{what} {value!r}: accepted")
    assert wrong == [], "\n" + "\n".join(wrong)


# --- finding 11: setuid modes -----------------------------------------------------------


def md5_of(data):
    return hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("mode", ["4777", "04755", 4755, "2755", "6755", "1777", "01644"])
def test_deliver_refuses_setuid_setgid_and_sticky_modes(tmp_path, mode):
    src = tmp_path / "tool"
    src.write_bytes(b"#!/bin/sh\nid\n")
    md5 = md5_of(src.read_bytes())
    dest = tmp_path / "out" / "tool"
    dest.parent.mkdir()

    with pytest.raises(KioskInputError) as exc:
        delivery.deliver(str(src), str(dest), md5, mode=mode)
    assert f"mode {mode!r} sets the setuid, setgid or sticky bit" in str(exc.value)
    assert "expected permission bits only, 0000-0777" in str(exc.value)
    assert os.listdir(dest.parent) == []

    kiosk = load_module("_modules/kiosk.py", __opts__={"kiosk": {}})
    with pytest.raises(KioskInputError, match="setuid, setgid or sticky"):
        kiosk.deliver(str(src), str(dest), md5, mode=mode)
    assert os.listdir(dest.parent) == []

    for test_mode in (False, True):
        state = load_module("_states/kiosk_file.py", __opts__={"test": test_mode})
        ret = state.delivered(str(dest), source=str(src), md5=md5, mode=mode)
        assert ret["result"] is False and "setuid, setgid or sticky" in ret["comment"], ret
        assert ret["changes"] == {}
    assert os.listdir(dest.parent) == []


def test_deliver_does_not_carry_a_setuid_bit_over_to_new_content(tmp_path):
    dest = tmp_path / "tool"
    dest.write_bytes(b"old\n")
    os.chmod(dest, 0o4755)
    src = tmp_path / "new"
    src.write_bytes(b"new\n")
    delivery.deliver(str(src), str(dest), md5_of(b"new\n"))
    assert dest.read_bytes() == b"new\n"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o755


# --- finding 11: rule dates, targets -------------------------------------------------------


@pytest.fixture
def kstore(tmp_path):
    yield store.open_store({"cachedir": str(tmp_path), "kiosk": {}})
    store.dispose_all()


def test_rule_dates_in_list_form_are_capped(kstore):
    first = datetime.date(2026, 1, 1)
    singles = [(first + datetime.timedelta(days=n)).isoformat() for n in range(rules.MAX_DATES + 1)]
    window = {"state": "off", "start": "00:00", "end": "24:00"}
    for dates in (
        singles,  # a list of single dates
        ",".join(singles),  # comma-separated
        [f"{singles[0]}..{singles[rules.MAX_DATES - 1]}", "2031-01-01"],  # a full range plus one more
        [singles[0]] * 5000,  # a huge list, even of duplicates
    ):
        with pytest.raises(KioskInputError) as exc:
            rules.add(kstore, "holidays", dates=dates, **window)
        assert str(exc.value).startswith("dates: ") and f"at most {rules.MAX_DATES} dates" in str(exc.value)
        with pytest.raises(KioskInputError, match="dates: "):
            rules.desired("holidays", dates=dates, **window)  # what kiosk_power.rule_present checks
    assert rules.list_rules(kstore) == []
    with pytest.raises(KioskInputError, match=r"days: 8 entries, over the limit of 7"):
        rules.add(kstore, "weekdays", days=["mon"] * 8, **window)
    assert rules.list_rules(kstore) == []
    stored = rules.add(kstore, "holidays", dates=singles[: rules.MAX_DATES], **window)
    assert len(stored["dates"]) == rules.MAX_DATES


def test_id_targets_are_capped_and_clean(kstore):
    longest = "id:" + "k" * 254 + "*"
    assert inventory.parse_target(longest) == ("id", "k" * 254 + "*")
    for bad in (
        "id:" + "k" * 256,
        "id:" + "k*" * 5000,
        "id:kiosk-\u202e1*",
        "id:kiosk\x00e1",
        "id:kiosk e1",
        "id:kiosk'e1",
        "id:kiosk/e1",
    ):
        with pytest.raises(KioskInputError) as exc:
            inventory.parse_target(bad)
        assert "is not a minion id glob (accepted: 1-255 characters" in str(exc.value)
        assert len(str(exc.value)) < 400 and str(exc.value).isprintable()
        with pytest.raises(KioskInputError, match="^target: "):
            rules.add(kstore, "r", state="on", days="daily", start="07:00", end="19:00", target=bad)
        with pytest.raises(KioskInputError):
            power.wake({}, kstore, bad, publish=lambda *a: pytest.fail("published"))
    assert rules.list_rules(kstore) == []
    assert power.list_events(kstore) == []


# --- finding 11: minion ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    "minion",
    [
        "kiosk\x00e1",
        "kiosk'e1",
        'kiosk"e1',
        "kiosk`e1",
        "kiosk-\u202e1e",
        "kiosk\u200be1",
        "kiosk\x1b[2Je1",
        "-kiosk-e1",
        "kiosk;e1",
    ],
    ids=["NUL", "quote", "dquote", "backtick", "RLO", "ZWSP", "ESC", "dash", "semicolon"],
)
def test_minion_ids_with_nul_quotes_or_bidi_are_refused(minion):
    with pytest.raises(KioskInputError) as exc:
        validate.minion_id(minion)
    message = str(exc.value)
    assert "is not a valid minion id (accepted: 1-255 ASCII letters, digits, '.', '_' and '-'" in message
    assert message.startswith(repr(minion)[:40]) and len(message) < 400
    assert message.isprintable()  # NUL, ESC, U+202E... appear escaped: safe in a log or console
    # The inventory CSV and the campus relays refuse it the same way.
    csv_text = f"code,minion_id,campus,groups,ip,mac,vnc_port\nE01,{minion},east,,,,\n"
    try:
        rows, errors = inventory.parse_csv(csv_text, {"east"})
    except KioskInputError as exc:  # a file with NUL bytes may be refused as a whole
        assert "\x00" in minion, exc
    else:
        assert rows == [] and [e.field for e in errors] == ["minion_id"]
    with pytest.raises(KioskInputError, match="is not a valid minion id"):
        config.campuses({"kiosk": {"campuses": {"east": {"timezone": "UTC", "relays": [minion]}}}})


def test_acceptable_minion_ids_still_pass():
    """Not a finding: the guard that host names and FQDNs stay accepted, and 255 is still the length cap."""
    for good in ("kiosk-e1", "relay_e1.campus.example.org", "K01", "a" * 255):
        assert validate.minion_id(good) == good
    with pytest.raises(KioskInputError, match="is not a valid minion id"):
        validate.minion_id("a" * 256)


# --- every list a caller passes has a cap ----------------------------------------------------


def test_sweep_ports_and_hosts_are_capped(monkeypatch):
    monkeypatch.setattr(nmap, "PortScanner", lambda *a, **k: pytest.fail("nmap started"))
    with pytest.raises(KioskInputError, match=r"ports has 65 entries, over the limit of 64.*nmap was not started"):
        sweep.sweep(["127.0.0.1"], ports=list(range(1, 66)))
    with pytest.raises(KioskInputError, match=r"hosts has 5 entries, over the limit of 4 \(kiosk:sweep_max_hosts\)"):
        sweep.sweep(["127.0.0.1"] * 5, max_hosts=4)
