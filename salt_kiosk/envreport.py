"""
The environment report: sensor readings and alerts of the relays, from the
events the ``kiosk_env`` beacon fires and the ``kiosk_mysql`` returner stores
(``event_return`` on the master of masters).
"""

import datetime
import json
import re

import sqlalchemy as sa

from salt_kiosk import clock
from salt_kiosk.config import campuses as campus_config
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError
from salt_kiosk.jobs import writer

# The master of masters sees a relay's event twice: as fired (salt/beacon/...)
# and as the syndic forwarded it (syndic/<relay>/salt/beacon/...); count the first.
_TAG = re.compile(r"^salt/beacon/(?P<relay>[^/]+)/kiosk_env/(?P<kind>reading|alert/(?P<sensor>\w+))$")


def _hours(value):
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise KioskInputError(f"hours {value!r} is not a number (accepted: 0.1-8760)") from None
    if not 0.1 <= hours <= 8760:
        raise KioskInputError(f"hours {value!r} is out of range (accepted: 0.1-8760)")
    return hours


def _stats(values):
    if not values:
        return None
    return {"min": min(values), "avg": round(sum(values) / len(values), 1), "max": max(values), "count": len(values)}


def report(opts, campus=None, hours=24, now=None):
    """
    ``{"since", "campuses": {campus: {"temperature": {min, avg, max, count},
    "humidity": ..., "smoke_readings": n, "relays": {relay: {...}}}},
    "alerts": [{"at", "relay", "campus", "sensor", "state", "value"}]}``.
    """
    hours = _hours(hours)
    campuses = campus_config(opts)
    if campus is not None and campus not in campuses:
        raise KioskInputError(f"campus {campus!r} is unknown (known: {', '.join(sorted(campuses)) or 'none'})")
    relay_campus = {relay: name for name, spec in campuses.items() for relay in spec["relays"]}
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
    since = now - datetime.timedelta(hours=hours)
    results = writer.JobResults.get(opts)
    results.ensure_schema()
    table = schema.events
    with results.engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.tag, table.c.data, table.c.alter_time)
            .where(table.c.tag.like("salt/beacon/%/kiosk_env/%"), table.c.alter_time >= since)
            .order_by(table.c.id)
        ).all()
    per_relay = {}
    alerts = []
    for row in rows:
        match = _TAG.search(row.tag)
        if not match:
            continue
        relay = match.group("relay")
        where = relay_campus.get(relay, "unknown")
        if campus is not None and where != campus:
            continue
        data = json.loads(row.data)
        if match.group("kind") == "reading":
            bucket = per_relay.setdefault(relay, {"temperature": [], "humidity": [], "smoke": 0})
            for key in ("temperature", "humidity"):
                if isinstance(data.get(key), (int, float)):
                    bucket[key].append(float(data[key]))
            if data.get("smoke"):
                bucket["smoke"] += 1
        else:
            alerts.append(
                {
                    "at": clock.iso(row.alter_time),
                    "relay": relay,
                    "campus": where,
                    "sensor": data.get("sensor"),
                    "state": data.get("state"),
                    "value": data.get("value"),
                }
            )
    out = {"since": clock.iso(since), "hours": hours, "campuses": {}, "alerts": alerts}
    for relay, bucket in sorted(per_relay.items()):
        name = relay_campus.get(relay, "unknown")
        entry = out["campuses"].setdefault(name, {"relays": {}, "_t": [], "_h": [], "smoke_readings": 0})
        entry["relays"][relay] = {
            "temperature": _stats(bucket["temperature"]),
            "humidity": _stats(bucket["humidity"]),
            "smoke_readings": bucket["smoke"],
        }
        entry["_t"] += bucket["temperature"]
        entry["_h"] += bucket["humidity"]
        entry["smoke_readings"] += bucket["smoke"]
    for entry in out["campuses"].values():
        entry["temperature"] = _stats(entry.pop("_t"))
        entry["humidity"] = _stats(entry.pop("_h"))
    return out
