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


class KioskPublishError(CommandExecutionError):
    """
    A job could not be published through the master (the master is not
    running or not answering, or it refused the request or assigned no job
    id), or its returns could not be collected. This is an error, not a fleet
    state: nothing is known about the targeted minions.

    ``failures`` maps the key of each such job to its message, which names
    the function, the targets and the reason; ``results`` holds what the
    other jobs of the same :func:`salt_kiosk.fanout.run_jobs` call returned
    (those were published and ran).
    """

    def __init__(self, failures, results=None):
        self.failures = dict(failures)
        self.results = dict(results or {})
        super().__init__("; ".join(self.failures[key] for key in sorted(self.failures, key=str)))

    def __reduce__(self):
        return (self.__class__, (self.failures, self.results))
