"""
Kiosk power control on the master of masters.

Power actions address kiosks through inventory targets: ``*``,
``campus:NAME``, ``group:NAME`` or ``id:GLOB``. Wake-on-LAN goes out from the
relays of each kiosk's own campus, so targets are resolved per campus.

Configuration (master config, ``kiosk:`` key; see :mod:`salt_kiosk.config`):
``db``, ``campuses`` (``relays``, ``broadcast``, ``timezone`` per campus).

Events fired: none yet.
"""

try:
    from salt_kiosk import inventory, store

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

__virtualname__ = "kiosk_power"


def __virtual__():
    if not HAS_LIB:
        return (False, f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk")
    return __virtualname__


def targets(target):
    """
    Show which kiosks a power target reaches, grouped by campus, with the relays
    that would carry Wake-on-LAN for each campus.

    target
        ``*``, ``campus:NAME``, ``group:NAME`` or ``id:GLOB``.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.targets '*'
        salt-run kiosk_power.targets group:outpatient
    """
    kstore = store.open_store(__opts__)
    campus_info = kstore.campus_rows()
    grouped = inventory.by_campus(inventory.list_kiosks(kstore, target))
    return {
        campus: {
            "relays": campus_info.get(campus, {}).get("relays", []),
            "broadcast": campus_info.get(campus, {}).get("broadcast"),
            "kiosks": [k["minion_id"] for k in members],
        }
        for campus, members in grouped.items()
    }
