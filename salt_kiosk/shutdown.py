"""
Power-off commands for kiosks, Linux and Windows.

``kiosk:shutdown_command`` and ``kiosk:shutdown_cancel_command`` in the minion
config replace the built-in commands (a vendor power tool, or a simulated
kiosk); they are argument lists whose items may use ``{delay}`` (seconds),
``{minutes}``, ``{action}`` (``poweroff``/``reboot``) and ``{message}``.
"""

import math

from salt_kiosk.errors import KioskInputError

MAX_DELAY = 24 * 3600
MAX_MESSAGE = 200


def check_delay(delay):
    """Return ``delay`` as whole seconds, 0 to 86400."""
    try:
        seconds = int(delay)
    except (TypeError, ValueError):
        seconds = None
    if seconds is None or isinstance(delay, bool) or not 0 <= seconds <= MAX_DELAY or str(seconds) != str(delay).strip():
        raise KioskInputError(f"delay {delay!r} is out of range (accepted: whole seconds 0-{MAX_DELAY})")
    return seconds


def check_message(message):
    """Return ``message`` (or None) if it is printable text of at most 200 characters."""
    if message is None:
        return None
    text = str(message)
    if len(text) > MAX_MESSAGE or any(ord(ch) < 32 for ch in text):
        raise KioskInputError(
            f"message {text[:40]!r}... is not acceptable (accepted: one line of printable text, "
            f"at most {MAX_MESSAGE} characters)"
        )
    return text


def _format(template, values):
    if not isinstance(template, (list, tuple)) or not template:
        raise KioskInputError(
            f"kiosk:shutdown_command must be a non-empty list of arguments, not {template!r}"
        )
    try:
        return [str(part).format(**values) for part in template]
    except (KeyError, IndexError, ValueError) as exc:
        raise KioskInputError(
            f"kiosk:shutdown_command {template!r} has a bad placeholder ({exc}); "
            "accepted: {delay}, {minutes}, {action}, {message}"
        ) from None


def command(kernel, delay=60, message=None, reboot=False, template=None):
    """
    Return the argument list that powers this kiosk off (or reboots it) after
    ``delay`` seconds. ``kernel`` is the ``kernel`` grain (Linux or Windows).
    """
    delay = check_delay(delay)
    message = check_message(message)
    action = "reboot" if reboot else "poweroff"
    if template is not None:
        values = {"delay": delay, "minutes": math.ceil(delay / 60), "action": action, "message": message or ""}
        return _format(template, values)
    if kernel == "Windows":
        argv = ["shutdown", "/r" if reboot else "/s", "/t", str(delay)]
        if message:
            argv += ["/c", message]
        return argv
    if kernel in ("Linux", "FreeBSD", "OpenBSD", "NetBSD", "Darwin", "SunOS"):
        when = "now" if delay == 0 else f"+{math.ceil(delay / 60)}"
        argv = ["shutdown", "-r" if reboot else "-h", when]
        if message:
            argv.append(message)
        return argv
    raise KioskInputError(f"shutdown is not supported on kernel {kernel!r} (accepted: Linux, Windows)")


def cancel_command(kernel, template=None):
    """Return the argument list that cancels a pending shutdown."""
    if template is not None:
        return _format(template, {"delay": 0, "minutes": 0, "action": "cancel", "message": ""})
    if kernel == "Windows":
        return ["shutdown", "/a"]
    if kernel in ("Linux", "FreeBSD", "OpenBSD", "NetBSD", "Darwin", "SunOS"):
        return ["shutdown", "-c"]
    raise KioskInputError(f"shutdown is not supported on kernel {kernel!r} (accepted: Linux, Windows)")
