"""
Verification of power events: compare the expected state of each kiosk with
what the relays of its campus observe on the network (each relay sweeps its
campus's kiosks: one ``kiosk.sweep`` per list of at most ``kiosk:sweep_chunk``
addresses, default 4096, the relays' own ``kiosk:sweep_max_hosts``) and with
Salt presence (did the kiosk's minion
answer ``test.ping``) as a second signal.

A kiosk is observed ``on`` when a relay sees it on the network or its minion
answers, ``off`` when the relays see it down and its minion is silent, and
``unknown`` when no relay could sweep it and its minion is silent.

Each sweep's outcome is stored per kiosk in ``kiosk_sweep_results``. After the
final sweep of a power event an alert event ``kiosk/alert/power/<kiosk id>`` is
fired for each kiosk still wrong, and one summary ``kiosk/power/verified``.
"""

import sqlalchemy as sa

from salt_kiosk import clock, fanout, inventory, validate
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import sweep as ksweep
from salt_kiosk.power import actions as power

EXPECTED = {"wake": "on", "shutdown": "off", "reboot": "on"}


def check(opts, kstore, target=None, expect="on", minions=None, ports=None, timeout=None, publish=fanout.run_jobs):
    """
    Compare ``expect`` with the observed state of the kiosks of ``target`` (or
    the minion ids ``minions``). Returns ``{minion id: {expected, observed,
    network, salt, ok, reason, relays}}``.
    """
    expect = validate.power_state(expect)
    kiosks = power.resolve_kiosks(kstore, target, minions)
    campuses = kstore.campus_rows()
    settings = (opts or {}).get("kiosk") or {}
    sweep_timeout = ksweep.parse_timeout(timeout if timeout is not None else settings.get("sweep_timeout", 60))
    if ports:
        ports = ksweep.parse_ports(ports)
    chunk = validate.whole_number(
        settings.get("sweep_chunk", ksweep.DEFAULT_MAX_HOSTS),
        "kiosk:sweep_chunk",
        1,
        65536,
        accepted=f"a number of addresses 1-65536, default {ksweep.DEFAULT_MAX_HOSTS} (the relays' kiosk:sweep_max_hosts)",
    )
    jobs, chunks = {}, {}
    groups = inventory.by_campus(kiosks)
    for campus, group in groups.items():
        ips = sorted({k["ip"] for k in group if k["ip"]})
        relays = (campuses.get(campus) or {}).get("relays") or []
        if ips and relays:
            kwarg = {"timeout": sweep_timeout}
            if ports:
                kwarg["ports"] = ports
            # A campus larger than a relay may sweep at once goes in several lists.
            for number, first in enumerate(range(0, len(ips), chunk)):
                part = ips[first : first + chunk]
                key = f"sweep:{campus}:{number}"
                chunks[key] = frozenset(part)
                jobs[key] = {"tgt": list(relays), "fun": "kiosk.sweep", "arg": [part], "kwarg": kwarg}
        jobs[f"ping:{campus}"] = {
            "tgt": [k["minion_id"] for k in group],
            "fun": "test.ping",
            "timeout": validate.whole_number(
                settings.get("presence_timeout", 10), "kiosk:presence_timeout", 1, 600, accepted="whole seconds 1-600"
            ),
        }
    returns = publish(opts, jobs, int(float(sweep_timeout)) + 15)
    # Per address: the relays that swept it and those that saw it up. A relay's
    # "up" counts only for the addresses it was asked about.
    swept, seen = {}, {}
    for key, part in chunks.items():
        for relay, answer in returns.get(key, {}).items():
            ret = answer.get("ret")
            if not isinstance(ret, dict) or not isinstance(ret.get("up"), list):
                continue
            for ip in part:
                swept.setdefault(ip, set()).add(relay)
            for ip in ret["up"]:
                if isinstance(ip, str) and ip in part:
                    seen.setdefault(ip, set()).add(relay)
    results = {}
    for campus, group in groups.items():
        pings = returns.get(f"ping:{campus}", {})
        for kiosk in group:
            minion = kiosk["minion_id"]
            sweeps = sorted(swept.get(kiosk["ip"], ())) if kiosk["ip"] else []
            seen_by = sorted(seen.get(kiosk["ip"], ())) if kiosk["ip"] else []
            if not kiosk["ip"] or not sweeps:
                network = "unknown"
            else:
                network = "up" if seen_by else "down"
            salt = "up" if (pings.get(minion) or {}).get("ret") is True else "down"
            if network == "up" or salt == "up":
                observed = "on"
            elif network == "down":
                observed = "off"
            else:
                observed = "unknown"
            reasons = []
            if network == "up":
                reasons.append(f"{kiosk['ip']} answers on the network (seen by {', '.join(seen_by)})")
            elif network == "down":
                reasons.append(f"{kiosk['ip']} does not answer on the network (swept by {', '.join(sweeps)})")
            elif not kiosk["ip"]:
                reasons.append("no IP in the inventory, not swept")
            else:
                reasons.append(f"no relay of campus {campus} could sweep it")
            reasons.append("its minion answers" if salt == "up" else "its minion is silent")
            results[minion] = {
                "code": kiosk["code"],
                "campus": campus,
                "ip": kiosk["ip"],
                "expected": expect,
                "observed": observed,
                "network": network,
                "salt": salt,
                "ok": observed == expect,
                "reason": f"expected {expect}, observed {observed}: " + "; ".join(reasons),
                "relays": sweeps,
            }
    return results


def verify(opts, kstore, event_id, sweep=1, final=True, fire=None, ports=None, timeout=None, publish=fanout.run_jobs):
    """
    One verification sweep of power event ``event_id``: store each kiosk's
    outcome and, on the ``final`` sweep, fire an alert per kiosk still wrong and
    a summary event. Returns the summary with per-kiosk results.
    """
    event_id = power.check_event_id(event_id)
    found = power.list_events(kstore, limit=1, event=event_id)
    if not found:
        raise KioskInputError(f"event: no power event {event_id!r} (see kiosk_power.events)")
    event = found[0]
    expected = EXPECTED.get(event["action"])
    if expected is None:
        raise KioskInputError(f"event: power event {event_id} has action {event['action']!r}, which cannot be verified")
    minions = sorted(event["kiosks"])
    results = check(opts, kstore, expect=expected, minions=minions, ports=ports, timeout=timeout, publish=publish)
    now = clock.utcnow()
    with kstore.begin() as conn:
        conn.execute(
            schema.sweep_results.insert(),
            [
                {
                    "event_id": event["id"],
                    "sweep": int(sweep),
                    "minion_id": minion,
                    "expected": r["expected"],
                    "observed": r["observed"],
                    "network": r["network"],
                    "salt": r["salt"],
                    "ok": r["ok"],
                    "reason": r["reason"],
                    "final": bool(final),
                    "checked_at": now,
                }
                for minion, r in results.items()
            ],
        )
    wrong = sorted(m for m, r in results.items() if not r["ok"])
    summary = {
        "event": event["id"],
        "action": event["action"],
        "rule": event["rule"],
        "sweep": int(sweep),
        "final": bool(final),
        "expected": expected,
        "total": len(results),
        "ok": len(results) - len(wrong),
        "wrong": wrong,
        "kiosks": results,
    }
    if final and fire is not None:
        for minion in wrong:
            r = results[minion]
            fire(
                {
                    "kiosk": minion,
                    "code": r["code"],
                    "campus": r["campus"],
                    "expected": r["expected"],
                    "observed": r["observed"],
                    "event": event["id"],
                    "action": event["action"],
                    "rule": event["rule"],
                    "reason": r["reason"],
                },
                f"kiosk/alert/power/{minion}",
            )
        fire(
            {
                "event": event["id"],
                "action": event["action"],
                "rule": event["rule"],
                "total": len(results),
                "ok": len(results) - len(wrong),
                "wrong": len(wrong),
                "kiosks_wrong": wrong,
            },
            "kiosk/power/verified",
        )
    return summary


def results_for(kstore, event_id):
    """Stored sweep outcomes of one power event, per sweep and kiosk."""
    table = schema.sweep_results
    event_id = power.check_event_id(event_id)
    with kstore.connect() as conn:
        rows = conn.execute(
            sa.select(table).where(table.c.event_id == event_id).order_by(table.c.sweep, table.c.minion_id)
        ).all()
    out = {}
    for row in rows:
        out.setdefault(row.sweep, {})[row.minion_id] = {
            "expected": row.expected,
            "observed": row.observed,
            "network": row.network,
            "salt": row.salt,
            "ok": bool(row.ok),
            "reason": row.reason,
            "final": bool(row.final),
            "checked_at": clock.iso(row.checked_at),
        }
    return out
