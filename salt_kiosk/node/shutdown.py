"""
Power-off commands for kiosks, Linux and Windows.

``kiosk:shutdown_command`` and ``kiosk:shutdown_cancel_command`` in the minion
config replace the built-in commands (a vendor power tool, or a simulated
kiosk); they are argument lists whose items may use ``{delay}`` (seconds),
``{minutes}``, ``{action}`` (``poweroff``/``reboot``) and ``{message}``.

The message can never become an option: the built-in Unix command ends its
options with ``--`` before the time (systemd's ``shutdown`` lets GNU getopt
permute its arguments, so without it a message ``-k`` or ``-c`` after the
time would still be read as an option); on Windows, and in a
``shutdown_command`` that puts ``{message}`` at the start of an argument
without a ``--`` item before it, a message starting with an option character
is refused. Control, bidi and other format characters are refused everywhere.
"""

import math
import unicodedata

from salt_kiosk import validate
from salt_kiosk.errors import KioskInputError

MAX_DELAY = 24 * 3600
MAX_MESSAGE = 200
UNIX_KERNELS = ("Linux", "FreeBSD", "OpenBSD", "NetBSD", "Darwin", "SunOS")
MESSAGE_ACCEPTED = (
    f"one line of printable text, at most {MAX_MESSAGE} characters, without control, bidi or other format characters"
)


def check_delay(delay):
    """Return ``delay`` as whole seconds, 0 to 86400."""
    return validate.whole_number(delay, "delay", 0, MAX_DELAY, accepted=f"whole seconds 0-{MAX_DELAY}")


def _char_name(char):
    return f"U+{ord(char):04X}" + (f" {unicodedata.name(char)}" if unicodedata.name(char, "") else "")


def check_message(message):
    """
    Return ``message`` (or None) if it is one line of printable text of at
    most 200 characters without control, bidi or other format characters.
    """
    if message is None:
        return None
    if isinstance(message, bool) or not isinstance(message, (str, int, float)):
        raise KioskInputError(f"message {validate.show(message)} is not text (accepted: {MESSAGE_ACCEPTED})")
    text = str(message)
    if len(text) > MAX_MESSAGE:
        raise KioskInputError(
            f"message {validate.show(text, 40)} is not acceptable: it is {len(text)} characters long "
            f"(accepted: {MESSAGE_ACCEPTED})"
        )
    bad = validate.unsafe_char(text)
    if bad is not None:
        raise KioskInputError(
            f"message {validate.show(text, 40)} is not acceptable: it contains {_char_name(bad)} "
            f"(accepted: {MESSAGE_ACCEPTED})"
        )
    return text


def _option_like(message, prefixes):
    return bool(message) and message.startswith(prefixes)


def _format(template, values):
    if not isinstance(template, (list, tuple)) or not template:
        raise KioskInputError(f"kiosk:shutdown_command must be a non-empty list of arguments, not {template!r}")
    parts = [str(part) for part in template]
    message = values.get("message") or ""
    if _option_like(message, "-"):
        for index, part in enumerate(parts):
            if part.startswith("{message") and "--" not in parts[:index]:
                raise KioskInputError(
                    f"message {validate.show(message, 40)} starts with '-' and kiosk:shutdown_command puts it "
                    f"at the start of argument {index} ({part!r}), where the power tool could read it as an "
                    "option (accepted: a message not starting with '-', or a shutdown_command with a '--' "
                    "item before {message}); nothing was run"
                )
    try:
        return [part.format(**values) for part in parts]
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise KioskInputError(
            f"kiosk:shutdown_command {template!r} has a bad placeholder ({exc}); "
            "accepted: {delay}, {minutes}, {action}, {message}"
        ) from None


def command(kernel, delay=60, message=None, reboot=False, template=None):
    """
    Return the argument list that powers this kiosk off (or reboots it) after
    ``delay`` seconds. ``kernel`` is the ``kernel`` grain (Linux or Windows).

    On Unix: ``shutdown -h|-r -- WHEN [MESSAGE]``; ``--`` ends the options, so
    the message is never read as one.
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
            if _option_like(message, ("/", "-")):
                raise KioskInputError(
                    f"message {validate.show(message, 40)} starts with '/' or '-', which Windows' shutdown "
                    f"could read as a switch (accepted: {MESSAGE_ACCEPTED}, not starting with '/' or '-')"
                )
            argv += ["/c", message]
        return argv
    if kernel in UNIX_KERNELS:
        when = "now" if delay == 0 else f"+{math.ceil(delay / 60)}"
        argv = ["shutdown", "-r" if reboot else "-h", "--", when]
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
    if kernel in UNIX_KERNELS:
        return ["shutdown", "-c"]
    raise KioskInputError(f"shutdown is not supported on kernel {kernel!r} (accepted: Linux, Windows)")
