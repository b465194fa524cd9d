"""
Exceptions raised by the salt-kiosk library.

They derive from Salt's own exceptions so that a runner or execution module can
let them propagate: the CLI then prints the message instead of a traceback.
"""

from salt.exceptions import AuthorizationError, CommandExecutionError, SaltInvocationError


class KioskInputError(SaltInvocationError):
    """
    Bad input: the message names the offending value and what is accepted.
    Raised before anything is changed.
    """


class KioskStoreError(CommandExecutionError):
    """
    The kiosk database could not be opened, upgraded or written.
    """


class KioskSchemaError(KioskStoreError):
    """
    The database's schema is older than this salt-kiosk needs and this process
    may not migrate it (only the master of masters does).
    """


class KioskAccessError(AuthorizationError):
    """
    The caller lacks the right for what a runner would do on its behalf (for
    example publishing a function its eauth grants do not allow). Raised
    before anything is changed or published.
    """
