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

Power rules are windows of desired state (see ``salt_kiosk.power.rules``); ``plan``
and ``state_at`` show what every kiosk will do before anything runs, and the
``kiosk_scheduler`` engine executes the transitions.

Events fired on the master bus:

``kiosk/rules/changed``
    After every rule change: ``{"action": "add"|"update"|"remove"|"import",
    "name", "revision", "user"}`` (``user``: who ran the runner, the eauth user
    through salt-api). A change of several rules at once (``rule_import``, a
    list to ``rule_remove``) has ``name: None`` and the list under ``names``.
    The scheduler engine re-plans on it.

``kiosk/power/wake``, ``kiosk/power/shutdown``, ``kiosk/power/reboot``
    After each recorded power event: ``{"event": id, "target", "user", "ok",
    "failed", "kiosks": {minion id: ok}}``.
"""

import logging

try:
    from salt_kiosk import events as kevents
    from salt_kiosk import inventory
    from salt_kiosk.db import store
    from salt_kiosk.errors import refusals_exit_nonzero
    from salt_kiosk.power import actions as power
    from salt_kiosk.power import engine as kengine
    from salt_kiosk.power import rules as krules

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

    def refusals_exit_nonzero(func):  # __virtual__ refuses the module; the name must still exist
        return func


log = logging.getLogger(__name__)

__virtualname__ = "kiosk_power"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


def _user():
    return globals().get("__user__") or "unknown"


def _fire_event(data, tag):
    kevents.fire_master(__opts__, data, tag)


def _rules_changed(action, name, kstore, names=None):
    data = {"action": action, "name": name, "revision": krules.rules_revision(kstore), "user": _user()}
    if names is not None:
        data["names"] = names
    _fire_event(data, "kiosk/rules/changed")


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
    _fire_event(data, f"kiosk/power/{result['action']}")


@refusals_exit_nonzero
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


@refusals_exit_nonzero
def wake(target, port=None, repeat=3, timeout=None):
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
        UDP port of the magic packets, 1-65535 (default ``kiosk:wol_port``, else 9).

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
        __opts__, store.open_store(__opts__), target, port=port, repeat=repeat, timeout=timeout, user=_user()
    )
    _fire(result)
    return result


@refusals_exit_nonzero
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
        One line shown on the kiosk: at most 200 characters, no control, bidi
        or other format characters. It is never read as an option of the
        kiosk's ``shutdown``; a kiosk whose ``kiosk:shutdown_command`` puts
        ``{message}`` at the start of an argument refuses one starting with
        ``-`` (that kiosk fails with the reason, nothing runs there).

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
        __opts__,
        store.open_store(__opts__),
        target,
        delay=delay,
        message=message,
        reboot=bool(reboot),
        test=bool(test),
        timeout=timeout,
        user=_user(),
    )
    _fire(result)
    return result


@refusals_exit_nonzero
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


@refusals_exit_nonzero
def rule_add(name, state, start, end, days=None, dates=None, target="*", priority=0, valid_from=None, valid_until=None):
    """
    Add a power rule: a window of desired state.

    name
        Unique rule name.

    state
        ``on`` or ``off``.

    start, end
        Local times ``HH:MM`` in each kiosk's campus time zone. ``end`` before
        ``start`` crosses midnight; ``00:00``-``24:00`` is the whole day.

    days
        Weekdays the window starts on: ``mon-fri``, ``sat,sun``, ``daily``
        (at most 7 entries).

    dates
        ISO dates (list, comma-separated, or ``A..B`` ranges; at most 1000
        dates in all). A day matching ``days`` or ``dates`` applies; at least
        one of them is required.

    target
        ``*`` (default), ``campus:NAME``, ``group:NAME`` or ``id:GLOB`` (a
        glob of at most 255 characters).

    priority
        Integer, higher wins (default 0). Ties go to the more specific target
        (id > group > campus > ``*``), then to the newer rule.

    valid_from, valid_until
        Optional ISO dates (inclusive) limiting the days the rule applies.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.rule_add weekday-hours state=on days=mon-fri start=07:30 end=18:00 target='*'
        salt-run kiosk_power.rule_add national-day state=off dates=2026-10-01..2026-10-07 start=00:00 end=24:00 priority=100
    """
    kstore = store.open_store(__opts__)
    rule = krules.add(
        kstore,
        name,
        state=state,
        start=start,
        end=end,
        days=days,
        dates=dates,
        target=target,
        priority=priority,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    _rules_changed("add", rule["name"], kstore)
    return rule


@refusals_exit_nonzero
def rule_update(name, **fields):
    """
    Change fields of an existing rule (any of state, days, dates, start, end,
    valid_from, valid_until, target, priority). Returns the rule before and
    after; unchanged values report no change.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.rule_update weekday-hours end=19:00
        salt-run kiosk_power.rule_update weekday-hours days=mon-sat priority=5
    """
    changes = {k: v for k, v in fields.items() if not k.startswith("__")}
    kstore = store.open_store(__opts__)
    old, new = krules.update(kstore, name, **changes)
    if old != new:
        _rules_changed("update", new["name"], kstore)
    return {"old": old, "new": new, "changed": old != new}


@refusals_exit_nonzero
def rule_import(rules):
    """
    Add many power rules at once, in one transaction: all or none. Each rule
    is checked as ``rule_add`` checks it, and the error lists every bad rule
    (its position, name and field); a name that is taken refuses the list.
    The rules get revisions in list order (ties go to the later one, as if
    added one by one). One ``kiosk/rules/changed`` event (``action:
    import``, ``names``) follows, so the engine re-plans once.

    rules
        A list of mappings, each with ``name`` and the fields of ``rule_add``
        (at most 10,000).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.rule_import '[{name: weekday-hours, state: on, days: mon-fri, start: "07:30", end: "18:00"}, {name: new-year, state: off, dates: 2027-01-01, start: "00:00", end: "24:00", priority: 100}]'
    """
    kstore = store.open_store(__opts__)
    names = krules.add_many(kstore, rules)
    _rules_changed("import", None, kstore, names=names)
    return {"added": names, "revision": krules.rules_revision(kstore)}


@refusals_exit_nonzero
def rule_remove(name):
    """
    Remove a power rule, or a list of rules in one transaction (all or none:
    a name that is not there refuses the list).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.rule_remove national-day
        salt-run kiosk_power.rule_remove '[late-clinic, national-day]'
    """
    kstore = store.open_store(__opts__)
    if isinstance(name, (list, tuple)):
        removed = krules.remove_many(kstore, name)
        _rules_changed("remove", None, kstore, names=[rule["name"] for rule in removed])
        return {"removed": removed}
    removed = krules.remove(kstore, name)
    _rules_changed("remove", removed["name"], kstore)
    return {"removed": removed}


@refusals_exit_nonzero
def rule_list(target=None):
    """
    List power rules, highest priority first (optionally those with exactly this target).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.rule_list
        salt-run kiosk_power.rule_list target=campus:east
    """
    return krules.list_rules(store.open_store(__opts__), target)


@refusals_exit_nonzero
def plan(target="*", since=None, until=None, timeline=False):
    """
    Show, per kiosk, its power state at ``since`` (``state``, and the
    deciding ``rule``) and the ``transitions`` after it: when its state
    changes, to what, and the rule that causes it. Times are in the campus's
    time zone.

    target
        ``*`` (default), ``campus:NAME``, ``group:NAME`` or ``id:GLOB``.

    since, until
        ISO dates or datetimes; a datetime with an offset is absolute, a naive
        one or a date (its midnight) is local to each kiosk's campus. Default:
        now to 24 hours later. At most 62 days.

    timeline
        Also show each kiosk's ``timeline``: every segment (``from``,
        ``until``, ``state``, ``rule``), a new one wherever the deciding rule
        changes even when the state does not (which holiday rule covers which
        hours). Default False: for a whole fleet it is several times larger.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.plan campus:east
        salt-run kiosk_power.plan 'id:kiosk-e1' since=2026-12-24 until=2026-12-27 timeline=True --out=yaml
    """
    return power.plan(__opts__, store.open_store(__opts__), target, since, until, timeline=timeline)


@refusals_exit_nonzero
def preview(rule, target=None, since=None, until=None):
    """
    The plan, with each kiosk's timeline, as it would be with ``rule`` saved;
    nothing is written and no event is fired (the console's rule editor shows
    it before the rule is saved). A bad field is refused with the message
    ``rule_add`` would give.

    rule
        A mapping of ``name`` and the fields of ``rule_add``. A stored rule of
        that name is replaced by it for the preview (an edit); otherwise it is
        added as the newest rule.

    target
        The kiosks to plan (default: the rule's own target).

    since, until
        As for ``plan`` (default: now to 24 hours later; at most 62 days).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.preview '{name: late-clinic, state: on, days: mon-fri, start: "18:00", end: "21:00", target: "group:opd"}' since=2026-12-07 until=2026-12-14
    """
    return power.preview(__opts__, store.open_store(__opts__), rule, target, since, until)


@refusals_exit_nonzero
def state_at(kiosk, when=None):
    """
    The desired power state of one kiosk at a moment, and the rule deciding it.

    kiosk
        Minion id or kiosk code.

    when
        ISO datetime (with offset, or local to the kiosk's campus when naive);
        default now.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.state_at kiosk-e1 2026-12-25T10:00
    """
    return power.state_at(__opts__, store.open_store(__opts__), kiosk, when)


@refusals_exit_nonzero
def engine_status():
    """
    Health of the ``kiosk_scheduler`` engine: which master of masters leads it
    (``leader``), last tick, the next transitions it has scheduled,
    transitions executed and missed.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_power.engine_status
    """
    return kengine.status(store.open_store(__opts__))
