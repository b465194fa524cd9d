"""
The ``kiosk`` grain: what the inventory refresh (``salt-run
kiosk_inventory.refresh``) collects from every node through the syndic tree.

Fields: ``role`` (kiosk / relay / central), ``code``, ``campus``, ``hostname``,
``minion_id``, ``interfaces`` (MAC and IPv4 per interface), ``interface``,
``ip`` and ``mac`` of the primary interface, ``serial``, ``vendor``, ``model``,
``cpu``, ``cpu_count``, ``memory_mb``, ``disk_gb``, ``release`` (installed
kiosk release) and, on relays, ``sensors`` (the ``kiosk_env`` beacon's
driver and pins).

Configuration (minion config, ``kiosk:`` key): ``role``, ``code`` (default:
the hostname, the unique identity), ``campus``, ``interface`` (the primary
interface; default: the one holding the default route).

A probe that fails leaves its field out and logs why; the grain never raises.
"""

import logging

try:
    from salt_kiosk.node import grain

    HAS_LIB = True
except ImportError:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False

log = logging.getLogger(__name__)


def kiosk():
    """
    Return ``{"kiosk": {...}}``.

    CLI Example:

    .. code-block:: bash

        salt 'kiosk-*' grains.item kiosk
    """
    if not HAS_LIB:
        return {}
    try:
        return {"kiosk": grain.collect(__opts__)}
    except Exception as exc:  # pylint: disable=broad-except
        log.error("kiosk grain failed: %s", exc)
        return {}
