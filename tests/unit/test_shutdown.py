import pytest

from salt_kiosk import shutdown
from salt_kiosk.errors import KioskInputError


def test_linux_commands():
    assert shutdown.command("Linux") == ["shutdown", "-h", "+1"]
    assert shutdown.command("Linux", delay=0) == ["shutdown", "-h", "now"]
    assert shutdown.command("Linux", delay=90, message="Closing", reboot=True) == ["shutdown", "-r", "+2", "Closing"]
    assert shutdown.cancel_command("Linux") == ["shutdown", "-c"]


def test_windows_commands():
    assert shutdown.command("Windows", delay=30, message="Bye") == ["shutdown", "/s", "/t", "30", "/c", "Bye"]
    assert shutdown.command("Windows", reboot=True) == ["shutdown", "/r", "/t", "60"]
    assert shutdown.cancel_command("Windows") == ["shutdown", "/a"]


def test_template_replaces_builtin():
    template = ["/usr/local/bin/kiosk-power", "{action}", "--in={delay}", "--minutes={minutes}", "{message}"]
    assert shutdown.command("Linux", delay=61, message="x", template=template) == [
        "/usr/local/bin/kiosk-power", "poweroff", "--in=61", "--minutes=2", "x",
    ]
    assert shutdown.cancel_command("Linux", template=["/bin/kp", "{action}"]) == ["/bin/kp", "cancel"]
    with pytest.raises(KioskInputError, match="bad placeholder"):
        shutdown.command("Linux", template=["x", "{when}"])
    with pytest.raises(KioskInputError, match="non-empty list"):
        shutdown.command("Linux", template="shutdown now")


@pytest.mark.parametrize("delay", [-1, 86401, "soon", True, 1.5])
def test_bad_delay(delay):
    with pytest.raises(KioskInputError, match="accepted: whole seconds 0-86400"):
        shutdown.command("Linux", delay=delay)


def test_bad_message_and_kernel():
    with pytest.raises(KioskInputError, match="one line of printable text"):
        shutdown.command("Linux", message="a\nb")
    with pytest.raises(KioskInputError, match="one line"):
        shutdown.command("Linux", message="x" * 201)
    with pytest.raises(KioskInputError, match="not supported on kernel 'Plan9'"):
        shutdown.command("Plan9")
