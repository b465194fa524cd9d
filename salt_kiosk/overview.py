"""
The fleet at a glance (``kiosk_inventory.fleet``, and the console's fleet
view): each campus with its relays and its kiosks, each kiosk with its last
observed power state (the newest verification sweep that looked at it), its
release and its open alert.

A kiosk's alert is open while the newest sweep of it is the final sweep of a
power event and found it wrong (the sweep that fired ``kiosk/alert/power/<id>``);
a later sweep that finds it right closes it.
"""

import sqlalchemy as sa

from salt_kiosk import clock, inventory, validate
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError

#: Longest code fragment ``search`` takes.
MAX_SEARCH = 64

#: The power states a kiosk is shown in; ``None``: never swept.
STATES = ("on", "off", "unknown")


def _search(value):
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_SEARCH or validate.unsafe_char(value):
        raise KioskInputError(
            f"search {validate.show(value)} is not accepted: a part of a kiosk code, "
            f"at most {MAX_SEARCH} printable characters"
        )
    return value.casefold()


def _latest_sweeps(conn):
    """``{minion_id: newest kiosk_sweep_results row}``."""
    table = schema.sweep_results
    newest = sa.select(sa.func.max(table.c.id)).group_by(table.c.minion_id).scalar_subquery()
    query = sa.select(
        table.c.minion_id,
        table.c.event_id,
        table.c.expected,
        table.c.observed,
        table.c.ok,
        table.c.reason,
        table.c.final,
        table.c.checked_at,
    ).where(table.c.id.in_(newest))
    return {row.minion_id: row for row in conn.execute(query)}


def _releases(conn):
    table = schema.release_kiosks
    query = sa.select(table.c.minion_id, table.c.version, table.c.ok, table.c.rolled_back)
    return {row.minion_id: row for row in conn.execute(query)}


def _kiosk_entry(kiosk, sweep, release):
    entry = dict(kiosk, power=None, expected=None, checked_at=None, release=None, release_ok=None, alert=None)
    if sweep is not None:
        entry.update(power=sweep.observed, expected=sweep.expected, checked_at=clock.iso(sweep.checked_at))
        if sweep.final and not sweep.ok:
            entry["alert"] = {
                "since": clock.iso(sweep.checked_at),
                "event": sweep.event_id,
                "expected": sweep.expected,
                "observed": sweep.observed,
                "reason": sweep.reason,
            }
    if release is not None:
        entry.update(release=release.version, release_ok=None if release.ok is None else bool(release.ok))
        if release.rolled_back:
            entry["release_ok"] = False
    return entry


def fleet(kstore, target="*", search=None):
    """
    ``{"campuses": [{"name", "timezone", "relays", "kiosks": [...]}], "counts":
    {"kiosks", "on", "off", "unknown", "unswept", "alerts"}}`` for the kiosks
    matching ``target`` (``*``, ``campus:NAME``, ``group:NAME``, ``id:GLOB``)
    whose code contains ``search`` (case-insensitive). Every campus of the
    target is listed, with no kiosk when none matches. Each kiosk carries its
    inventory fields and ``power`` (``on``, ``off``, ``unknown``, or None
    when no sweep has looked at it), ``expected``, ``checked_at``,
    ``release``, ``release_ok`` and ``alert`` (None, or ``{"since", "event",
    "expected", "observed", "reason"}``).
    """
    needle = _search(search)
    kind, value = inventory.parse_target(target)
    kiosks = inventory.list_kiosks(kstore, target)
    if needle is not None:
        kiosks = [k for k in kiosks if needle in k["code"].casefold()]
    with kstore.connect() as conn:
        sweeps = _latest_sweeps(conn)
        releases = _releases(conn)
    campus_rows = kstore.campus_rows()
    if kind == "campus" and value not in campus_rows:
        raise KioskInputError(
            f"campus {validate.show(value)} is unknown (known: {', '.join(sorted(campus_rows)) or 'none'})"
        )
    names = [value] if kind == "campus" else sorted(set(campus_rows) | {k["campus"] for k in kiosks})
    campuses = {
        name: {
            "name": name,
            "timezone": campus_rows.get(name, {}).get("timezone"),
            "relays": list(campus_rows.get(name, {}).get("relays", [])),
            "kiosks": [],
        }
        for name in names
    }
    counts = dict.fromkeys(("kiosks", *STATES, "unswept", "alerts"), 0)
    for kiosk in kiosks:
        entry = _kiosk_entry(kiosk, sweeps.get(kiosk["minion_id"]), releases.get(kiosk["minion_id"]))
        campuses[kiosk["campus"]]["kiosks"].append(entry)
        counts["kiosks"] += 1
        counts[entry["power"] if entry["power"] in STATES else "unswept"] += 1
        counts["alerts"] += entry["alert"] is not None
    return {"campuses": list(campuses.values()), "counts": counts}
