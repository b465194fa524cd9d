import pytest

from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import shutdown


def test_linux_commands():
    assert shutdown.command("Linux") == ["shutdown", "-h", "--", "+1"]
    assert shutdown.command("Linux", delay=0) == ["shutdown", "-h", "--", "now"]
    assert shutdown.command("Linux", delay=90, message="Closing", reboot=True) == [
        "shutdown",
        "-r",
        "--",
        "+2",
        "Closing",
    ]
    assert shutdown.command("Linux", message="-k") == ["shutdown", "-h", "--", "+1", "-k"]
    assert shutdown.cancel_command("Linux") == ["shutdown", "-c"]


def test_windows_commands():
    assert shutdown.command("Windows", delay=30, message="Bye") == ["shutdown", "/s", "/t", "30", "/c", "Bye"]
    assert shutdown.command("Windows", reboot=True) == ["shutdown", "/r", "/t", "60"]
    assert shutdown.cancel_command("Windows") == ["shutdown", "/a"]


def test_template_replaces_builtin():
    template = ["/usr/local/bin/kiosk-power", "{action}", "--in={delay}", "--minutes={minutes}", "{message}"]
    assert shutdown.command("Linux", delay=61, message="x", template=template) == [
        "/usr/local/bin/kiosk-power",
        "poweroff",
        "--in=61",
        "--minutes=2",
        "x",
    ]
    assert shutdown.cancel_command("Linux", template=["/bin/kp", "{action}"]) == ["/bin/kp", "cancel"]
    with pytest.raises(KioskInputError, match="bad placeholder"):
        shutdown.command("Linux", template=["x", "{when}"])
    with pytest.raises(KioskInputError, match="non-empty list"):
        shutdown.command("Linux", template="shutdown now")


@pytest.mark.parametrize("delay", [-1, 86401, "soon", True, 1.5, float("nan"), float("inf"), "inf", "nan"])
def test_bad_delay(delay):
    with pytest.raises(KioskInputError, match="accepted: whole seconds 0-86400"):
        shutdown.command("Linux", delay=delay)


def test_windows_message_never_a_switch():
    for message in ("/a", "-f"):
        with pytest.raises(KioskInputError, match="starts with '/' or '-'"):
            shutdown.command("Windows", message=message)


def test_template_message_never_an_option():
    template = ["/usr/local/bin/kiosk-power", "{action}", "{message}"]
    with pytest.raises(
        KioskInputError, match=r"starts with '-' and kiosk:shutdown_command puts it at the start of argument 2"
    ):
        shutdown.command("Linux", message="-k", template=template)
    guarded = ["/usr/local/bin/kiosk-power", "{action}", "--", "{message}"]
    assert shutdown.command("Linux", message="-k", template=guarded)[-1] == "-k"
    assert shutdown.command("Linux", message="-k", template=["kp", "--text={message}"])[-1] == "--text=-k"
    assert shutdown.command("Linux", message="Closing - back at 7", template=template)[-1] == "Closing - back at 7"


def test_unicode_text_is_fine_but_not_format_characters():
    assert shutdown.check_message("今日は閉館です　また明日") == "今日は閉館です　また明日"
    for bad in ("a\u202eb", "a\u2066b", "zero\u200bwidth", "bell\x07", "del\x7f", "c1\x85", "a\u2028b"):
        with pytest.raises(KioskInputError, match="is not acceptable: it contains U\\+"):
            shutdown.check_message(bad)
    with pytest.raises(KioskInputError, match="is not text"):
        shutdown.check_message(["a"])


def test_bad_message_and_kernel():
    with pytest.raises(KioskInputError, match="one line of printable text"):
        shutdown.command("Linux", message="a\nb")
    with pytest.raises(KioskInputError, match="one line"):
        shutdown.command("Linux", message="x" * 201)
    with pytest.raises(KioskInputError, match="not supported on kernel 'Plan9'"):
        shutdown.command("Plan9")
