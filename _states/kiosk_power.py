"""
Power rules as states, so rules can live in pillar and be applied from top.sls.

.. code-block:: yaml

    weekday-hours:
      kiosk_power.rule_present:
        - power: "on"
        - days: mon-fri
        - start: "07:30"
        - end: "18:00"
        - target: "*"
        - priority: 0

    old-rule:
      kiosk_power.rule_absent

``state`` is the one rule field with another name here: Salt reserves
``state`` in SLS for the state module, so the rule's desired state is given as
``power``.

The states write to the kiosk database given by ``kiosk:db`` in the minion
config or in pillar (pillar wins), so they run on the central master's own
minion (see the ``central`` role). ``test=True`` reports what would change;
an unchanged rule reports no changes.

Salt passes job data (``__pub_*`` keys) on to states run with ``state.single``
through a syndic; the states accept and ignore it.

Events fired (to the master, with ``event.send``):

``kiosk/rules/changed``
    After a rule was added, changed or removed: ``{"action", "name", "revision"}``.
    The ``kiosk_scheduler`` engine re-plans on it.
"""

import logging

try:
    from salt.exceptions import SaltException

    from salt_kiosk import config
    from salt_kiosk.db import store
    from salt_kiosk.power import rules

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

log = logging.getLogger(__name__)

__virtualname__ = "kiosk_power"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


def _store():
    return store.open_store(config.with_pillar(__opts__, __pillar__))


def _changed(action, name, kstore):
    data = {"action": action, "name": name, "revision": rules.rules_revision(kstore)}
    try:
        __salt__["event.send"]("kiosk/rules/changed", data)
    except Exception as exc:  # pylint: disable=broad-except
        log.warning("could not announce the rule change on the master bus: %s", exc)


def rule_present(
    name,
    power,
    start,
    end,
    days=None,
    dates=None,
    target="*",
    priority=0,
    valid_from=None,
    valid_until=None,
    **_job_data,
):
    """
    Ensure the power rule ``name`` exists with exactly these fields (see
    ``kiosk_power.rule_add`` for their meaning; ``power`` is the rule's
    ``state``: on or off).

    CLI Example:

    .. code-block:: bash

        salt central state.single kiosk_power.rule_present national-day power=off dates=2026-10-01..2026-10-07 start=00:00 end=24:00 priority=100 test=True

    .. code-block:: yaml

        national-day:
          kiosk_power.rule_present:
            - power: "off"
            - dates: 2026-10-01..2026-10-07
            - start: "00:00"
            - end: "24:00"
            - priority: 100
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    fields = {
        "state": power,
        "start": start,
        "end": end,
        "days": days,
        "dates": dates,
        "target": target,
        "priority": priority,
        "valid_from": valid_from,
        "valid_until": valid_until,
    }
    try:
        wanted = rules.desired(name, **fields)
        kstore = _store()
        current = rules.get(kstore, name)
        if current is None:
            ret["changes"] = {"old": None, "new": wanted}
            if __opts__["test"]:
                ret["result"] = None
                ret["comment"] = f"Power rule {name} would be added"
                return ret
            rules.add(kstore, name, **fields)
            _changed("add", name, kstore)
            ret["comment"] = f"Power rule {name} added"
            return ret
        diff = {key: {"old": current[key], "new": value} for key, value in wanted.items() if current.get(key) != value}
        if not diff:
            ret["comment"] = f"Power rule {name} is in the desired state"
            return ret
        ret["changes"] = diff
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"Power rule {name} would be updated"
            return ret
        rules.update(kstore, name, **{key: fields[key] for key in fields})
        _changed("update", name, kstore)
        ret["comment"] = f"Power rule {name} updated"
    except SaltException as exc:
        ret["result"] = False
        ret["changes"] = {}
        ret["comment"] = f"Power rule {name}: {exc}"
    return ret


def rule_absent(name, **_job_data):
    """
    Ensure no power rule named ``name`` exists.

    CLI Example:

    .. code-block:: bash

        salt central state.apply kiosk.rules

    .. code-block:: yaml

        old-late-clinic:
          kiosk_power.rule_absent
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        kstore = _store()
        current = rules.get(kstore, name)
        if current is None:
            ret["comment"] = f"Power rule {name} is already absent"
            return ret
        ret["changes"] = {"old": current, "new": None}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"Power rule {name} would be removed"
            return ret
        rules.remove(kstore, name)
        _changed("remove", name, kstore)
        ret["comment"] = f"Power rule {name} removed"
    except SaltException as exc:
        ret["result"] = False
        ret["changes"] = {}
        ret["comment"] = f"Power rule {name}: {exc}"
    return ret
