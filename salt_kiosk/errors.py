"""
Exceptions raised by the salt-kiosk library.

They derive from Salt's own exceptions so that a runner or execution module can
let them propagate: the CLI then prints the message instead of a traceback.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError


class KioskInputError(SaltInvocationError):
    """
    Bad input: the message names the offending value and what is accepted.
    Raised before anything is changed.
    """


class KioskStoreError(CommandExecutionError):
    """
    The kiosk database could not be opened, upgraded or written.
    """
