"""
Kiosk power control on the master of masters.

Power actions address kiosks through inventory targets: ``*``,
``campus:NAME``, ``group:NAME`` or ``id:GLOB``. Wake-on-LAN does not cross
subnets, so ``wake`` publishes through the syndic tree to ALL relays of each
kiosk's campus (MACs from the inventory, broadcast from ``kiosk:campuses``);
``shutdown`` goes to the kiosks' own minions. Every call is recorded as a power
event (who, when, target, action, per-kiosk outcome).

Configuration (master config, ``kiosk:`` key; see :mod:`salt_kiosk.config`):
``db``, ``campuses`` (``relays``, ``broadcast``, ``timezone`` per campus).

Events fired on the master bus:

``kiosk/power/wake``, ``kiosk/power/shutdown``, ``kiosk/power/reboot``
    After each recorded power event: ``{"event": id, "target", "user", "ok",
    "failed", "kiosks": {minion id: ok}}``.
"""

import logging

try:
    import salt.utils.event

    from salt_kiosk import inventory, power, store

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

log = logging.getLogger(__name__)

__virtualname__ = "kiosk_power"


def __virtual__():
    if not HAS_LIB:
        return (False, f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk")
    return __virtualname__


def _user():
    return globals().get("__user__") or "unknown"


def _fire(result):
    if result.get("event") is None:
        return
    data = {
        "event": result["event"],
        "target": result["target"],
        "user": _user(),
        "ok": result["ok"],
        "failed": result["failed"],
        "kiosks": {minion: entry["ok"] for minion, entry in result["kiosks"].items()},
    }
    with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as bus:
        bus.fire_event(data, f"kiosk/power/{result['action']}")


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


def wake(target, port=9, repeat=3, timeout=None):
    """
    Wake kiosks with Wake-on-LAN sent by every relay of their campus.

    Returns per kiosk the relays that acknowledged (``acked``), the relays that
    did not answer (``silent``), the relays that answered with an error
    (``failed``) and ``ok``; a campus with no answering relay fails its kiosks
    with the reason in ``detail``. Per campus, the broadcast address used and
    the relays' answers. The call is recorded as a power event (``event``).

    target
        ``*``, ``campus:NAME``, ``group:NAME`` or ``id:GLOB``; must match at
        least one kiosk.

    port
        UDP port of the magic packets, 1-65535 (default 9).

    repeat
        Packets per kiosk per relay, 1-20 (default 3).

    timeout
        Seconds to wait for the relays, 1-600 (default 10).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.wake campus:east
        salt-run kiosk_power.wake 'id:kiosk-e*' repeat=5
    """
    result = power.wake(
        store.open_store(__opts__), __opts__, target, port=port, repeat=repeat, timeout=timeout, user=_user()
    )
    _fire(result)
    return result


def shutdown(target, delay=60, message=None, reboot=False, test=False, timeout=None):
    """
    Power kiosks off (or reboot them) through their own minions.

    Returns per kiosk whether its minion acknowledged (``ok``, ``acked``), did
    not answer (``silent``) or failed (``failed``, ``detail``). Recorded as a
    power event unless ``test`` is set.

    target
        ``*``, ``campus:NAME``, ``group:NAME`` or ``id:GLOB``; must match at
        least one kiosk.

    delay
        Seconds before the power-off, 0-86400 (default 60).

    message
        One line shown on the kiosk (at most 200 characters).

    reboot
        Reboot instead of powering off.

    test
        Ask each kiosk for the command it would run; nothing is run or recorded.

    timeout
        Seconds to wait for the kiosks, 1-600 (default 10).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.shutdown group:outpatient delay=300 message="Closing for the night"
        salt-run kiosk_power.shutdown 'id:kiosk-e1' test=True
    """
    result = power.shutdown(
        store.open_store(__opts__), __opts__, target, delay=delay, message=message, reboot=bool(reboot),
        test=bool(test), timeout=timeout, user=_user(),
    )
    _fire(result)
    return result


def events(limit=20, kiosk=None, event=None):
    """
    List recorded power events, newest first, with each kiosk's outcome.

    limit
        How many events, 1-1000 (default 20).

    kiosk
        Only events that concerned this minion id.

    event
        Only the event with this id.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.events
        salt-run kiosk_power.events kiosk=kiosk-e1 limit=5
    """
    return power.list_events(store.open_store(__opts__), limit=limit, kiosk=kiosk, event=event)
