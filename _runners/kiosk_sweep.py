"""
Verification sweeps on the master of masters: prove which kiosks reached the
expected power state.

The relays of each campus sweep their own kiosks with nmap (``kiosk.sweep``),
and each kiosk's minion is pinged as a second signal (see
:mod:`salt_kiosk.power.verify`). The ``kiosk_scheduler`` engine runs ``verify`` for
every power event it executes, at the engine's ``sweep_delays``.

Configuration (master config, ``kiosk:`` key): ``db``, ``campuses``,
``sweep_timeout`` (seconds nmap may take on a relay, default 60).

Events fired on the master bus (by ``verify`` with ``final=True``):

``kiosk/alert/power/<kiosk id>``
    A kiosk still in the wrong state: ``{"kiosk", "code", "campus", "expected",
    "observed", "event", "action", "rule", "reason"}``.

``kiosk/power/verified``
    Summary: ``{"event", "action", "rule", "total", "ok", "wrong", "kiosks_wrong"}``.
"""

try:
    from salt_kiosk import events as kevents
    from salt_kiosk.db import store
    from salt_kiosk.errors import refusals_exit_nonzero
    from salt_kiosk.power import verify as kverify

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

    def refusals_exit_nonzero(func):  # __virtual__ refuses the module; the name must still exist
        return func


__virtualname__ = "kiosk_sweep"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


def _fire(data, tag):
    kevents.fire_master(__opts__, data, tag)


@refusals_exit_nonzero
def verify(event, sweep=1, final=True, ports=None, timeout=None):
    """
    Verify one power event: the expected state per kiosk (on after a wake, off
    after a shutdown) against the observed state. Stores the outcome; with
    ``final`` (default) fires an alert per kiosk still wrong and a summary.

    event
        Power event id (see ``kiosk_power.events``).

    sweep
        Number of this sweep (1, 2, 3 ...), stored with the results.

    final
        Whether this is the last sweep (alerts are fired only then).

    ports
        TCP ports the relays probe as well (at most 64), e.g. ``22,5900``.

    timeout
        Seconds a relay's nmap may take, 1-3600 (NaN and infinity are
        refused); default ``kiosk:sweep_timeout`` (60).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_sweep.verify 42
        salt-run kiosk_sweep.verify 42 sweep=1 final=False
    """
    return kverify.verify(
        __opts__,
        store.open_store(__opts__),
        event,
        sweep=sweep,
        final=bool(final),
        fire=_fire,
        ports=ports,
        timeout=timeout,
    )


@refusals_exit_nonzero
def check(target, expect, ports=None, timeout=None):
    """
    Ad hoc: compare the expected state with the observed state of the kiosks of
    ``target``. Nothing is stored and no alert is fired.

    target
        ``*``, ``campus:NAME``, ``group:NAME`` or ``id:GLOB``.

    expect
        ``on`` or ``off``.

    ports, timeout
        As for ``verify``: at most 64 TCP ports; 1-3600 seconds.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_sweep.check campus:east expect=on
        salt-run kiosk_sweep.check 'id:kiosk-e*' expect=off ports=22,5900
    """
    return kverify.check(__opts__, store.open_store(__opts__), target, expect=expect, ports=ports, timeout=timeout)


@refusals_exit_nonzero
def results(event):
    """
    The stored sweep outcomes of one power event, per sweep and kiosk.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_sweep.results 42
    """
    return kverify.results_for(store.open_store(__opts__), event)
