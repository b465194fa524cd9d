"""
The environment report: sensor readings and alerts of the relays, from the
events the ``kiosk_env`` beacon fires and the ``kiosk_mysql`` returner stores
(``event_return`` on the master of masters).
"""

import datetime
import json
import math
import re

import sqlalchemy as sa

from salt_kiosk import clock, validate
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


def _number(value):
    """A reading's value as a float, or None: a relay's data is not trusted (no bool, NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _window(opts, campus, hours, now):
    """
    ``(hours, since, now, {relay: campus}, events)`` where events are
    ``(row, relay, its campus, "reading" or "alert", data)`` for each beacon
    event of the last ``hours`` from ``campus`` (None: all), oldest first.
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
    events = []
    for row in rows:
        match = _TAG.search(row.tag)
        if not match:
            continue
        relay = match.group("relay")
        where = relay_campus.get(relay, "unknown")
        if campus is not None and where != campus:
            continue
        data = json.loads(row.data)
        if isinstance(data, dict):
            events.append((row, relay, where, "reading" if match.group("kind") == "reading" else "alert", data))
    return hours, since, now, relay_campus, events


def _alert(row, relay, where, data):
    return {
        "at": clock.iso(row.alter_time),
        "relay": relay,
        "campus": where,
        "sensor": data.get("sensor"),
        "state": data.get("state"),
        "value": data.get("value"),
    }


def report(opts, campus=None, hours=24, now=None):
    """
    ``{"since", "campuses": {campus: {"temperature": {min, avg, max, count},
    "humidity": ..., "smoke_readings": n, "relays": {relay: {...}}}},
    "alerts": [{"at", "relay", "campus", "sensor", "state", "value"}]}``.
    """
    hours, since, _now, relay_campus, events = _window(opts, campus, hours, now)
    per_relay = {}
    alerts = []
    for row, relay, where, kind, data in events:
        if kind == "alert":
            alerts.append(_alert(row, relay, where, data))
            continue
        bucket = per_relay.setdefault(relay, {"temperature": [], "humidity": [], "smoke": 0})
        for key in ("temperature", "humidity"):
            if _number(data.get(key)) is not None:
                bucket[key].append(_number(data[key]))
        if data.get("smoke"):
            bucket["smoke"] += 1
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


#: How many points a series may have.
MAX_BUCKETS = 1000


def series(opts, campus=None, hours=24, buckets=96, now=None):
    """
    Temperature and humidity over time, for charts: the last ``hours`` cut
    into ``buckets`` equal intervals, each with the average of the readings
    in it, per relay and per campus. ``{"since", "until", "bucket_seconds",
    "relays": {relay: {"campus", "points": [...]}}, "campuses": {campus:
    {"points": [...]}}, "alerts": [...]}``; a point is ``{"at" (the start of
    its interval), "temperature", "humidity", "readings", "smoke"}``, and an
    interval without a reading has no point. Alerts are as in :func:`report`.
    """
    count = validate.whole_number(buckets, "buckets", 1, MAX_BUCKETS)
    hours, since, now, relay_campus, events = _window(opts, campus, hours, now)
    width = hours * 3600.0 / count
    sums = {}  # (scope, name, index) -> [temperature sum, n, humidity sum, n, readings, with smoke]
    alerts = []
    for row, relay, where, kind, data in events:
        if kind == "alert":
            alerts.append(_alert(row, relay, where, data))
            continue
        index = min(count - 1, max(0, int((row.alter_time - since).total_seconds() // width)))
        temperature, humidity = _number(data.get("temperature")), _number(data.get("humidity"))
        for key in (("relay", relay, index), ("campus", where, index)):
            acc = sums.setdefault(key, [0.0, 0, 0.0, 0, 0, 0])
            if temperature is not None:
                acc[0] += temperature
                acc[1] += 1
            if humidity is not None:
                acc[2] += humidity
                acc[3] += 1
            acc[4] += 1
            acc[5] += bool(data.get("smoke"))
    out = {
        "since": clock.iso(since),
        "until": clock.iso(now),
        "bucket_seconds": round(width, 3),
        "relays": {},
        "campuses": {},
        "alerts": alerts,
    }
    for (scope, name, index), acc in sorted(sums.items()):
        point = {
            "at": clock.iso(since + datetime.timedelta(seconds=index * width)),
            "temperature": round(acc[0] / acc[1], 1) if acc[1] else None,
            "humidity": round(acc[2] / acc[3], 1) if acc[3] else None,
            "readings": acc[4],
            "smoke": acc[5],
        }
        if scope == "relay":
            entry = out["relays"].setdefault(name, {"campus": relay_campus.get(name, "unknown"), "points": []})
        else:
            entry = out["campuses"].setdefault(name, {"points": []})
        entry["points"].append(point)
    return out
