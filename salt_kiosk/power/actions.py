"""
Manual power actions from the master of masters: Wake-on-LAN through every
relay of each kiosk's campus, shutdown through each kiosk's own minion, and the
record of every power event.

Publishing is injected (``publish(opts, jobs, timeout)``, by default
:func:`salt_kiosk.fanout.run_jobs`), so the orchestration is testable without
daemons and the runner stays thin.

A caller that must know what it is about to publish before it goes out (the
schedule engine records the job id of each kiosk's command first, see
:mod:`salt_kiosk.power.engine`) passes ``before_publish(jobs, carriers)``:
it is called once the jobs are built and before anything is published, with
the jobs exactly as ``publish`` will get them (``{campus: job}``) and
``carriers`` (``{campus: [minion ids whose command that job carries]}``). It
may set a job's ``jid`` (the Salt job id to publish it under) and may raise to
publish nothing.
"""

import datetime

import sqlalchemy as sa

from salt_kiosk import clock, config, fanout, inventory, validate
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import shutdown as kshutdown
from salt_kiosk.node import wol
from salt_kiosk.power import rules, schedule

DEFAULT_TIMEOUT = 10
MAX_TIMEOUT = 600


def check_timeout(timeout):
    """Return ``timeout`` (seconds, 1-600) or the default when None."""
    if timeout is None:
        return DEFAULT_TIMEOUT
    return validate.whole_number(timeout, "timeout", 1, MAX_TIMEOUT, accepted=f"whole seconds 1-{MAX_TIMEOUT}")


def resolve_kiosks(kstore, target, minions=None):
    """
    The inventory kiosks of ``target``, or of the minion ids ``minions`` when
    given; matching no kiosk is an error (nothing is sent for an empty target).
    """
    if minions is not None:
        wanted = set(minions)
        kiosks = [k for k in inventory.list_kiosks(kstore, "*") if k["minion_id"] in wanted]
        if not kiosks:
            raise KioskInputError(f"none of {sorted(wanted)} is in the inventory; nothing was sent")
        return kiosks
    inventory.parse_target(target)
    kiosks = inventory.list_kiosks(kstore, target)
    if not kiosks:
        raise KioskInputError(f"target {target!r} matches no kiosk in the inventory; nothing was sent")
    return kiosks


def _kiosk_entry(kiosk, ok, acked=(), silent=(), failed=None, detail=None, **extra):
    entry = {
        "code": kiosk["code"],
        "campus": kiosk["campus"],
        "ok": ok,
        "acked": list(acked),
        "silent": list(silent),
        "failed": dict(failed or {}),
        "detail": detail,
    }
    entry.update(extra)
    return entry


def wake(
    opts,
    kstore,
    target,
    port=None,
    repeat=3,
    timeout=None,
    user="unknown",
    source="manual",
    rule=None,
    publish=fanout.run_jobs,
    minions=None,
    before_publish=None,
):
    """
    Wake the kiosks of ``target``: every relay of each kiosk's campus sends the
    magic packets to the campus broadcast address. Return per kiosk the relays
    that acknowledged, the silent ones and the ones that failed; a kiosk is ok
    when at least one relay of its campus sent its packets. The call is recorded
    as a power event. A job that could not be published raises
    :class:`~salt_kiosk.errors.KioskPublishError` (see :mod:`salt_kiosk.fanout`)
    and no power event is recorded. ``before_publish``: see the module
    documentation (a campus job carries the commands of its kiosks with a MAC).
    """
    if port is None:
        port = ((opts or {}).get("kiosk") or {}).get("wol_port", 9)
    port = validate.port(port)
    repeat = wol.parse_repeat(repeat)
    timeout = check_timeout(timeout)
    kiosks = resolve_kiosks(kstore, target, minions)
    campuses = kstore.campus_rows()
    results, jobs, members = {}, {}, {}
    for campus, group in inventory.by_campus(kiosks).items():
        info = campuses.get(campus) or {"relays": [], "broadcast": None}
        for kiosk in group:
            if not kiosk["mac"]:
                results[kiosk["minion_id"]] = _kiosk_entry(
                    kiosk, False, detail="no MAC address in the inventory", mac=None
                )
        with_mac = [k for k in group if k["mac"]]
        if not with_mac:
            continue
        if not info["relays"]:
            for kiosk in with_mac:
                results[kiosk["minion_id"]] = _kiosk_entry(
                    kiosk,
                    False,
                    mac=kiosk["mac"],
                    detail=f"campus {campus} has no relays configured (kiosk:campuses:{campus}:relays)",
                )
            continue
        # A relay's kiosk.wake takes at most wol.MAX_MACS addresses: a larger
        # campus is woken by several jobs (keys "<campus>:<n>").
        parts = [with_mac[first : first + wol.MAX_MACS] for first in range(0, len(with_mac), wol.MAX_MACS)]
        for number, part in enumerate(parts):
            key = campus if len(parts) == 1 else f"{campus}:{number}"
            members[key] = (campus, part)
            jobs[key] = {
                "tgt": list(info["relays"]),
                "fun": "kiosk.wake",
                "arg": [[k["mac"] for k in part]],
                "kwarg": {"broadcast": info["broadcast"], "port": port, "repeat": repeat},
            }
    if before_publish is not None:
        before_publish(jobs, {key: [k["minion_id"] for k in members[key][1]] for key in jobs})
    returns = publish(opts, jobs, timeout) if jobs else {}
    campus_summary = {}
    for key, job in jobs.items():
        campus, part = members[key]
        answers = returns.get(key, {})
        relays = job["tgt"]
        acked_relays = [
            r for r in relays if r in answers and not fanout.failed(answers[r]) and isinstance(answers[r]["ret"], dict)
        ]
        errors = {r: _error_text(answers[r]["ret"]) for r in relays if r in answers and r not in acked_relays}
        silent = [r for r in relays if r not in answers]
        summary = campus_summary.setdefault(
            campus,
            {
                "broadcast": job["kwarg"]["broadcast"] or wol.LIMITED_BROADCAST,
                "relays_acked": list(acked_relays),
                "relays_silent": [],
                "relays_failed": {},
            },
        )
        # Over several jobs: acked by a relay that acked every one of them.
        summary["relays_acked"] = [r for r in summary["relays_acked"] if r in acked_relays]
        summary["relays_silent"] = sorted(set(summary["relays_silent"]) | set(silent), key=relays.index)
        summary["relays_failed"].update(errors)
        for kiosk in part:
            acked = [r for r in acked_relays if (answers[r]["ret"].get(kiosk["mac"]) or {}).get("packets", 0) > 0]
            detail = None
            if not acked:
                detail = f"no relay of campus {campus} sent the wake-up (silent: {', '.join(silent) or 'none'}"
                detail += f"; failed: {', '.join(errors) or 'none'})"
            results[kiosk["minion_id"]] = _kiosk_entry(
                kiosk, bool(acked), acked, silent, errors, detail, mac=kiosk["mac"]
            )
    params = {"port": port, "repeat": repeat, "timeout": timeout}
    event_id = record_event(kstore, "wake", target, user, source, params, results, rule=rule)
    return _summary(event_id, "wake", target, results, campuses=campus_summary)


def shutdown(
    opts,
    kstore,
    target,
    delay=60,
    message=None,
    reboot=False,
    test=False,
    timeout=None,
    user="unknown",
    source="manual",
    rule=None,
    publish=fanout.run_jobs,
    minions=None,
    before_publish=None,
):
    """
    Power off (or reboot) the kiosks of ``target`` through their own minions.
    A kiosk is ok when its minion acknowledged the command. With ``test`` the
    kiosks report the command they would run and no power event is recorded.
    A job that could not be published raises
    :class:`~salt_kiosk.errors.KioskPublishError` and no power event is recorded.
    ``before_publish``: see the module documentation (a campus job carries the
    commands of the kiosks it targets).
    """
    delay = kshutdown.check_delay(delay)
    message = kshutdown.check_message(message)
    timeout = check_timeout(timeout)
    kiosks = resolve_kiosks(kstore, target, minions)
    jobs, members = {}, {}
    for campus, group in inventory.by_campus(kiosks).items():
        members[campus] = group
        kwarg = {"delay": delay, "reboot": bool(reboot)}
        if message is not None:
            kwarg["message"] = message
        if test:
            kwarg["test"] = True
        jobs[campus] = {"tgt": [k["minion_id"] for k in group], "fun": "kiosk.shutdown", "kwarg": kwarg}
    if before_publish is not None:
        before_publish(jobs, {campus: list(job["tgt"]) for campus, job in jobs.items()})
    returns = publish(opts, jobs, timeout)
    results = {}
    for campus, group in members.items():
        answers = returns.get(campus, {})
        for kiosk in group:
            minion = kiosk["minion_id"]
            answer = answers.get(minion)
            if answer is None:
                results[minion] = _kiosk_entry(
                    kiosk, False, silent=[minion], detail="the kiosk's minion did not answer"
                )
            elif fanout.failed(answer) or not isinstance(answer["ret"], dict):
                results[minion] = _kiosk_entry(
                    kiosk, False, failed={minion: _error_text(answer["ret"])}, detail=_error_text(answer["ret"])
                )
            else:
                results[minion] = _kiosk_entry(kiosk, True, acked=[minion], command=answer["ret"].get("command"))
    action = "reboot" if reboot else "shutdown"
    if test:
        return _summary(None, action, target, results, test=True)
    params = {"delay": delay, "message": message, "timeout": timeout}
    event_id = record_event(kstore, action, target, user, source, params, results, rule=rule)
    return _summary(event_id, action, target, results)


def _error_text(ret):
    text = ret if isinstance(ret, str) else repr(ret)
    return text.strip().splitlines()[-1][:500] if text.strip() else "empty answer"


def _summary(event_id, action, target, results, **extra):
    summary = {
        "event": event_id,
        "action": action,
        "target": target,
        "ok": sum(1 for r in results.values() if r["ok"]),
        "failed": sum(1 for r in results.values() if not r["ok"]),
        "kiosks": results,
    }
    summary.update(extra)
    return summary


def record_event(kstore, action, target, user, source, params, results, rule=None):
    """Store one power event and its per-kiosk outcome; return the event id."""
    with kstore.begin() as conn:
        event_id = conn.execute(
            schema.power_events.insert().values(
                created_at=clock.utcnow(),
                username=str(user or "unknown")[:128],
                source=source,
                action=action,
                target=str(target),
                rule=rule,
                params=params,
                ok_count=sum(1 for r in results.values() if r["ok"]),
                failed_count=sum(1 for r in results.values() if not r["ok"]),
            )
        ).inserted_primary_key[0]
        if results:
            conn.execute(
                schema.power_event_kiosks.insert(),
                [
                    {
                        "event_id": event_id,
                        "minion_id": minion,
                        "code": r["code"],
                        "campus": r["campus"],
                        "ok": r["ok"],
                        "acked": r["acked"],
                        "silent": r["silent"],
                        "detail": r["detail"],
                    }
                    for minion, r in results.items()
                ],
            )
    return event_id


def check_event_id(event):
    """Return ``event`` as a power event id (a positive integer)."""
    number = None
    if isinstance(event, int) and not isinstance(event, bool):
        number = event
    elif isinstance(event, str) and event.strip().isascii() and event.strip().isdigit() and len(event.strip()) <= 18:
        number = int(event.strip())
    if number is None or not 1 <= number < 2**63:
        raise KioskInputError(
            f"event {validate.show(event)} is not a power event id (accepted: a positive integer, see kiosk_power.events)"
        )
    return number


def list_events(kstore, limit=20, kiosk=None, event=None):
    """
    Return recorded power events, newest first, each with its per-kiosk outcome.
    ``kiosk`` keeps the events that concerned that minion id; ``event`` selects one.
    """
    limit = validate.whole_number(limit, "limit", 1, 1000)
    ev, evk = schema.power_events, schema.power_event_kiosks
    query = sa.select(ev).order_by(ev.c.id.desc()).limit(limit)
    if event is not None:
        query = query.where(ev.c.id == check_event_id(event))
    if kiosk is not None:
        query = query.where(ev.c.id.in_(sa.select(evk.c.event_id).where(evk.c.minion_id == str(kiosk))))
    with kstore.connect() as conn:
        events = [dict(row._mapping) for row in conn.execute(query)]
        ids = [e["id"] for e in events]
        per_kiosk = {}
        if ids:
            for row in conn.execute(sa.select(evk).where(evk.c.event_id.in_(ids)).order_by(evk.c.minion_id)):
                per_kiosk.setdefault(row.event_id, {})[row.minion_id] = {
                    "code": row.code,
                    "campus": row.campus,
                    "ok": bool(row.ok),
                    "acked": list(row.acked or []),
                    "silent": list(row.silent or []),
                    "detail": row.detail,
                }
    for event_row in events:
        event_row["created_at"] = clock.iso(event_row["created_at"])
        event_row["user"] = event_row.pop("username")
        event_row["kiosks"] = per_kiosk.get(event_row["id"], {})
    return events


def plan(opts, kstore, target="*", since=None, until=None, now=None, timeline=False):
    """The transitions (and with ``timeline`` the timeline) of every kiosk of ``target``."""
    kiosks = resolve_kiosks(kstore, target)
    return schedule.plan(
        kiosks,
        kstore.campus_rows(),
        rules.load(kstore),
        config.default_state(opts),
        since,
        until,
        now,
        timeline=validate.boolean(timeline, "timeline"),
    )


def preview(opts, kstore, rule, target=None, since=None, until=None, now=None):
    """
    The plan (with timelines) of ``target`` as it would be with ``rule`` saved,
    and nothing written: the rule editor's preview. ``rule`` is a mapping of
    ``name`` and the fields of ``rule_add``, checked as ``rule_add`` checks
    them. A rule of that name already stored is replaced by it for the preview
    and keeps its rank among equal rules (its creation order); a new rule
    ranks as the newest. ``target`` defaults to the rule's own target.
    """
    if not isinstance(rule, dict):
        raise KioskInputError(
            f"rule {validate.show(rule)} is not accepted: a mapping of name and the fields of rule_add "
            f"({', '.join(rules.FIELDS)})"
        )
    fields = dict(rule)
    name = fields.pop("name", None)
    if name in (None, ""):
        raise KioskInputError("name: is required")
    current = rules.load(kstore)
    name = rules.parse_name(name)
    stored = {r.name: r for r in current}
    revision = stored[name].revision if name in stored else max((r.revision for r in current), default=0) + 1
    candidate = rules.Rule.from_fields(name, revision=revision, **fields)
    kiosks = resolve_kiosks(kstore, candidate.target if target in (None, "") else target)
    return schedule.plan(
        kiosks,
        kstore.campus_rows(),
        [r for r in current if r.name != name] + [candidate],
        config.default_state(opts),
        since,
        until,
        now,
        timeline=True,
    )


def state_at(opts, kstore, kiosk, when=None):
    """The desired state of one kiosk at ``when`` (default now) and the deciding rule."""
    entry = inventory.find_kiosk(kstore, str(kiosk))
    campus = kstore.campus_rows().get(entry["campus"])
    if campus is None:
        raise KioskInputError(f"kiosk {entry['minion_id']}: campus {entry['campus']!r} is not configured")
    if when in (None, ""):
        when = datetime.datetime.now(datetime.timezone.utc)
    return schedule.state_at(entry, campus, rules.load(kstore), config.default_state(opts), when)
