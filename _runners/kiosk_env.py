"""
Environment report of the campus relays (DHT11/DHT22 and MQ-2 sensors).

The ``kiosk_env`` beacon on each relay fires readings and alert transitions;
with ``event_return: kiosk_mysql`` on the master of masters (optionally
``event_return_whitelist: ["*kiosk_env*"]``) they are stored in
``kiosk_events``, which this runner summarises.

Configuration (master config): ``kiosk:campuses`` (relay -> campus),
``kiosk_mysql`` / ``kiosk:db``.

Events fired: none.
"""

try:
    from salt_kiosk import envreport
    from salt_kiosk.errors import refusals_exit_nonzero

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

    def refusals_exit_nonzero(func):  # __virtual__ refuses the module; the name must still exist
        return func


__virtualname__ = "kiosk_env"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


@refusals_exit_nonzero
def report(campus=None, hours=24):
    """
    Min/avg/max temperature and humidity per relay and per campus over the
    last ``hours``, readings with smoke, and the alert history.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_env.report
        salt-run kiosk_env.report campus=east hours=168
    """
    return envreport.report(__opts__, campus=campus, hours=hours)


@refusals_exit_nonzero
def series(campus=None, hours=24, buckets=96):
    """
    Temperature and humidity over time per relay and per campus, for charts:
    the last ``hours`` cut into ``buckets`` equal intervals (default 96: 15
    minutes over 24 hours), each with the average of its readings, the number
    of readings and of those with smoke; an interval without a reading has
    no point. The alerts of the period come with it.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_env.series
        salt-run kiosk_env.series campus=east hours=168 buckets=84
    """
    return envreport.series(__opts__, campus=campus, hours=hours, buckets=buckets)
