"""
Exceptions raised by the salt-kiosk library.

They derive from Salt's own exceptions so that a runner or execution module can
let them propagate: the CLI then prints the message instead of a traceback.
"""

import functools
import types

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


def refusals_exit_nonzero(func):
    """
    For runner functions: bad input (:class:`KioskInputError`) comes back as
    ``{"error": message, "retcode": 1}``, so that ``salt-run`` prints the
    message and exits 1, and salt-api answers with the message. Raised as it
    is, Salt's runner client prints it as "Passed invalid arguments" with the
    function's usage and ``salt-run`` exits 0 (a SaltInvocationError is a
    TypeError to it).

    The wrapper is given the runner module's globals: Salt's runner client
    injects ``__user__`` and ``__jid_event__`` into the ``__globals__`` of the
    function it loaded, and the runner reads them from its own module.
    """
    refused = KioskInputError  # a closure cell: the wrapper's globals are the runner's

    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except refused as exc:
            context = func.__globals__.get("__context__")
            if context is not None:
                context["retcode"] = 1  # the job is failed for salt-api and the job cache
            return {"error": str(exc), "retcode": 1}

    rebuilt = types.FunctionType(
        wrapper.__code__, func.__globals__, func.__name__, wrapper.__defaults__, wrapper.__closure__
    )
    return functools.update_wrapper(rebuilt, func)
