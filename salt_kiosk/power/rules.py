"""
Power rules: windows of desired state (see DESIGN.md, "the rule model").

A rule has a ``name``, a ``state`` (on/off), the days it applies to
(``days``: weekday names or ranges such as ``mon-fri``; ``dates``: ISO dates or
``A..B`` ranges; either or both, a day matching either applies), a window
``start``-``end`` in the campus's local time (``end`` before ``start`` crosses
midnight into the next day; ``00:00``-``24:00`` is the whole day; equal
``start`` and ``end`` are refused), optional ``valid_from`` / ``valid_until``
dates (inclusive, on the day the window starts), a ``target`` (``*``,
``campus:NAME``, ``group:NAME``, ``id:GLOB``) and an integer ``priority``.

Values arrive from the CLI and pillar as YAML 1.1: ``on``/``off`` become
booleans and ``18:00`` the integer 1080 (minutes); both are accepted. Every
field is checked before anything is stored, and errors name the field.
"""

import datetime
import re

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from salt_kiosk import clock, inventory, validate
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {
    **{d: i for i, d in enumerate(DAY_NAMES)},
    **{
        full: i for i, full in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
    },
}
FIELDS = ("state", "days", "dates", "start", "end", "valid_from", "valid_until", "target", "priority")
SPECIFICITY = {"all": 0, "campus": 1, "group": 2, "id": 3}
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
#: The most dates a rule may hold, however they are given (list entries,
#: ``A..B`` ranges, comma-separated): almost three years of single days.
MAX_DATES = 1000
#: Entries of ``days``: seven weekdays; more entries can only repeat them.
MAX_DAY_ITEMS = 7


def _err(field, value, accepted):
    return KioskInputError(f"{field}: {validate.show(value)} is not valid (accepted: {accepted})")


def parse_name(value):
    text = "" if value is None else str(value).strip()
    if not _NAME_RE.match(text):
        raise _err("name", value, "1-128 characters of letters, digits and _ . : @ -, starting with a letter or digit")
    return text


def parse_time(value, field, allow_24=False):
    """Return minutes after midnight for ``HH:MM`` or YAML's base-60 integer."""
    accepted = "HH:MM from 00:00 to " + ("24:00" if allow_24 else "23:59") + " (or minutes after midnight)"
    if isinstance(value, bool) or value is None:
        raise _err(field, value, accepted)
    if isinstance(value, int):
        minutes = value
    elif isinstance(value, str) and _TIME_RE.match(value.strip()):
        hours, mins = (int(x) for x in _TIME_RE.match(value.strip()).groups())
        if mins > 59:
            raise _err(field, value, accepted)
        minutes = hours * 60 + mins
    else:
        raise _err(field, value, accepted)
    if not 0 <= minutes <= (1440 if allow_24 else 1439):
        if isinstance(value, int) and value >= 0:
            # The Salt CLI and YAML read 24:01 as the base-60 integer 1441.
            raise KioskInputError(
                f"{field}: {value!r} (read as {value // 60}:{value % 60:02d}) is not valid (accepted: {accepted})"
            )
        raise _err(field, value, accepted)
    return minutes


def format_time(minutes):
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_days(value):
    """Return a sorted list of weekday numbers (Monday 0) or None."""
    if value in (None, "", []):
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    days = set()
    accepted = "day names mon..sun, ranges such as mon-fri, comma-separated or a list, or 'daily'"
    if len(items) > MAX_DAY_ITEMS:
        raise KioskInputError(
            f"days: {len(items)} entries, over the limit of {MAX_DAY_ITEMS} (accepted: {accepted}, "
            f"at most {MAX_DAY_ITEMS} entries)"
        )
    for item in items:
        text = str(item).strip().lower()
        if text in ("daily", "all", "*"):
            days.update(range(7))
            continue
        first, sep, last = text.partition("-")
        if first not in _DAY_ALIASES or (sep and last not in _DAY_ALIASES):
            raise _err("days", item, accepted)
        a = _DAY_ALIASES[first]
        b = _DAY_ALIASES[last] if sep else a
        day = a
        while True:
            days.add(day)
            if day == b:
                break
            day = (day + 1) % 7
    if not days:
        raise _err("days", value, accepted)
    return sorted(days)


def _parse_date(value, field):
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value).strip())
    except ValueError:
        raise _err(field, value, "an ISO date such as 2026-10-01") from None


def parse_date(value, field):
    return None if value in (None, "") else _parse_date(value, field)


def parse_dates(value):
    """
    Return a sorted list of ISO date strings or None; ``A..B`` ranges are
    expanded. At most 1000 entries and 1000 dates in all, whatever the form.
    """
    if value in (None, "", []):
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    too_many = f"at most {MAX_DATES} dates in all (list entries, comma-separated dates and A..B ranges together)"
    if len(items) > MAX_DATES:
        raise KioskInputError(f"dates: {len(items)} entries, over the limit (accepted: {too_many})")
    dates = set()
    for item in items:
        if isinstance(item, str) and ".." in item:
            first, last = (_parse_date(x, "dates") for x in item.split("..", 1))
            if last < first:
                raise _err("dates", item, "a range A..B with B not before A")
            if (last - first).days + 1 > MAX_DATES:
                raise _err("dates", item, too_many)
            day = first
            while day <= last:
                dates.add(day)
                day += datetime.timedelta(days=1)
        else:
            dates.add(_parse_date(item, "dates"))
        if len(dates) > MAX_DATES:
            raise _err("dates", item, too_many)
    return [d.isoformat() for d in sorted(dates)]


PRIORITY_RANGE = (-(2**31), 2**31 - 1)


def parse_priority(value):
    accepted = f"an integer from {PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]}"
    if isinstance(value, bool):
        raise _err("priority", value, accepted)
    if isinstance(value, int):
        number = value
    elif re.fullmatch(r"[+-]?\d{1,10}", str(value).strip()):
        number = int(str(value).strip())
    else:
        raise _err("priority", value, accepted)
    if not PRIORITY_RANGE[0] <= number <= PRIORITY_RANGE[1]:
        raise _err("priority", value, accepted)
    return number


def parse_target(value):
    try:
        kind, _value = inventory.parse_target(value)
    except KioskInputError as exc:
        raise KioskInputError(f"target: {exc}") from None
    return str(value).strip(), kind


def normalise(fields, partial=False):
    """
    Check and normalise rule fields. With ``partial`` only the given fields are
    checked (an update); otherwise ``state``, ``start``, ``end`` and one of
    ``days``/``dates`` are required. Returns the database values.
    """
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise KioskInputError(f"unknown rule field(s) {sorted(unknown)} (accepted: {', '.join(FIELDS)})")
    out = {}
    if not partial:
        for required in ("state", "start", "end"):
            if fields.get(required) is None:
                raise KioskInputError(f"{required}: is required")
    if "state" in fields:
        try:
            out["state"] = validate.power_state(fields["state"])
        except KioskInputError:
            raise _err("state", fields["state"], "on or off") from None
    if "start" in fields:
        out["start_min"] = parse_time(fields["start"], "start")
    if "end" in fields:
        out["end_min"] = parse_time(fields["end"], "end", allow_24=True)
    if "days" in fields:
        out["days"] = parse_days(fields["days"])
    if "dates" in fields:
        out["dates"] = parse_dates(fields["dates"])
    if "valid_from" in fields:
        out["valid_from"] = parse_date(fields["valid_from"], "valid_from")
    if "valid_until" in fields:
        out["valid_until"] = parse_date(fields["valid_until"], "valid_until")
    if "target" in fields:
        out["target"], _kind = parse_target(fields["target"])
    elif not partial:
        out["target"] = "*"
    if "priority" in fields:
        out["priority"] = parse_priority(fields["priority"])
    elif not partial:
        out["priority"] = 0
    if not partial:
        out.setdefault("days", None)
        out.setdefault("dates", None)
        out.setdefault("valid_from", None)
        out.setdefault("valid_until", None)
    return out


def check_whole(values):
    """Checks across fields, on the complete (merged) rule."""
    if not values.get("days") and not values.get("dates"):
        raise KioskInputError("days/dates: a rule needs days (e.g. mon-fri), dates (e.g. 2026-10-01) or both")
    if values["start_min"] == values["end_min"] or (values["start_min"] == 0 and values["end_min"] == 0):
        raise KioskInputError(
            f"end: {format_time(values['end_min'])} equals start (a window needs two different times; "
            "00:00-24:00 is the whole day)"
        )
    if values.get("valid_from") and values.get("valid_until") and values["valid_until"] < values["valid_from"]:
        raise KioskInputError(
            f"valid_until: {values['valid_until'].isoformat()} is before valid_from {values['valid_from'].isoformat()}"
        )


def display(values):
    """The operator-facing form of normalised rule values (as stored)."""
    return {
        "state": values["state"],
        "days": ",".join(DAY_NAMES[d] for d in values["days"]) if values.get("days") else None,
        "dates": list(values["dates"]) if values.get("dates") else None,
        "start": format_time(values["start_min"]),
        "end": format_time(values["end_min"]),
        "valid_from": values["valid_from"].isoformat() if values.get("valid_from") else None,
        "valid_until": values["valid_until"].isoformat() if values.get("valid_until") else None,
        "target": values["target"],
        "priority": values["priority"],
    }


def _row_dict(row):
    shown = {"name": row.name}
    shown.update(display(row._mapping))
    shown["revision"] = row.revision
    return shown


def desired(name, **fields):
    """Check a complete rule definition; return its operator-facing form."""
    values = normalise(fields)
    check_whole(values)
    shown = {"name": parse_name(name)}
    shown.update(display(values))
    return shown


def _next_revision(conn):
    current = conn.execute(sa.select(sa.func.max(schema.rules.c.revision))).scalar() or 0
    counter = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "rules_revision")).scalar()
    return max(current, int(counter or 0)) + 1


def _bump(conn, revision):
    updated = conn.execute(
        schema.meta.update().where(schema.meta.c.key == "rules_revision").values(value=str(revision))
    ).rowcount
    if not updated:
        conn.execute(schema.meta.insert().values(key="rules_revision", value=str(revision)))


def rules_revision(kstore):
    """The revision counter of the rule set: changes whenever a rule is added, updated or removed."""
    with kstore.connect() as conn:
        value = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "rules_revision")).scalar()
    return int(value or 0)


def get(kstore, name):
    with kstore.connect() as conn:
        row = conn.execute(sa.select(schema.rules).where(schema.rules.c.name == parse_name(name))).first()
    return _row_dict(row) if row else None


def add(kstore, name, **fields):
    """Store a new rule; a duplicate name is refused. Return the stored rule."""
    name = parse_name(name)
    values = normalise(fields)
    check_whole(values)
    now = clock.utcnow()
    try:
        with kstore.begin() as conn:
            if conn.execute(sa.select(schema.rules.c.name).where(schema.rules.c.name == name)).first():
                raise KioskInputError(f"name: a rule named {name!r} already exists (use rule_update to change it)")
            revision = _next_revision(conn)
            conn.execute(
                schema.rules.insert().values(
                    name=name, revision=revision, created_revision=revision, created_at=now, updated_at=now, **values
                )
            )
            _bump(conn, revision)
    except IntegrityError:
        raise KioskInputError(f"name: a rule named {name!r} already exists (use rule_update to change it)") from None
    return get(kstore, name)


#: The most rules one ``add_many`` / ``remove_many`` takes: a whole hospital's
#: rule set, with room to spare.
MAX_BATCH = 10000


def _batch(items, what):
    if not isinstance(items, (list, tuple)) or not items:
        raise KioskInputError(f"{what}: {validate.show(items)} is not a list (accepted: a non-empty list)")
    validate.check_count(items, what, MAX_BATCH)
    return list(items)


def add_many(kstore, specs):
    """
    Store the rules ``specs`` (each a mapping of ``name`` and the fields of
    :func:`add`) in one transaction: all or none. Every rule is checked first
    and the error lists each bad one (its position, name and field). Each rule
    gets its own revision, in list order, so that ties between them go to the
    later one as if they had been added one by one. Return the stored names.
    """
    specs = _batch(specs, "rules")
    rows, errors, seen = [], [], {}
    for position, spec in enumerate(specs, 1):
        label = f"rule {position}"
        try:
            if not isinstance(spec, dict):
                raise KioskInputError(f"{validate.show(spec)} is not a mapping of name and rule fields")
            fields = dict(spec)
            name = parse_name(fields.pop("name", None))
            label = f"rule {position} ({name})"
            if name in seen:
                raise KioskInputError(f"name: {name!r} is also rule {seen[name]} of this list")
            seen[name] = position
            values = normalise(fields)
            check_whole(values)
            rows.append({"name": name, **values})
        except KioskInputError as exc:
            errors.append(f"{label}: {exc}")
        if len(errors) >= 50:
            errors.append("(stopped after 50 bad rules)")
            break
    if errors:
        raise KioskInputError(f"{len(errors)} bad rule(s), nothing stored:\n  " + "\n  ".join(errors))
    now = clock.utcnow()
    try:
        with kstore.begin() as conn:
            names = [row["name"] for row in rows]
            taken = set()
            for chunk in range(0, len(names), 500):
                part = names[chunk : chunk + 500]
                taken.update(
                    conn.execute(sa.select(schema.rules.c.name).where(schema.rules.c.name.in_(part))).scalars()
                )
            if taken:
                raise KioskInputError(
                    f"name: {len(taken)} rule(s) already exist, nothing stored: {', '.join(sorted(taken)[:20])}"
                    f"{' ...' if len(taken) > 20 else ''} (use rule_update to change a rule)"
                )
            first = _next_revision(conn)
            for offset, row in enumerate(rows):
                revision = first + offset
                row.update(revision=revision, created_revision=revision, created_at=now, updated_at=now)
            for chunk in range(0, len(rows), 500):
                conn.execute(schema.rules.insert(), rows[chunk : chunk + 500])
            _bump(conn, first + len(rows) - 1)
    except IntegrityError:
        raise KioskInputError("name: a rule of this list was added meanwhile, nothing stored; try again") from None
    return [row["name"] for row in rows]


def remove_many(kstore, names):
    """Delete the rules ``names`` in one transaction: all or none (a missing one is refused). Return them."""
    names = [parse_name(name) for name in _batch(names, "names")]
    if len(set(names)) != len(names):
        raise KioskInputError(f"names: {sorted(n for n in set(names) if names.count(n) > 1)} are listed twice")
    with kstore.begin() as conn:
        found = {}
        for chunk in range(0, len(names), 500):
            part = names[chunk : chunk + 500]
            for row in conn.execute(sa.select(schema.rules).where(schema.rules.c.name.in_(part))):
                found[row.name] = row
        missing = [name for name in names if name not in found]
        if missing:
            raise KioskInputError(
                f"name: no rule named {', '.join(repr(n) for n in missing[:20])}{' ...' if len(missing) > 20 else ''}"
                ", nothing removed"
            )
        for chunk in range(0, len(names), 500):
            conn.execute(schema.rules.delete().where(schema.rules.c.name.in_(names[chunk : chunk + 500])))
        _bump(conn, _next_revision(conn))
    return [_row_dict(found[name]) for name in names]


def update(kstore, name, **fields):
    """Change fields of an existing rule. Return ``(old, new)``; unchanged fields keep the revision."""
    name = parse_name(name)
    if not fields:
        raise KioskInputError(f"nothing to update for rule {name!r} (accepted fields: {', '.join(FIELDS)})")
    changes = normalise(fields, partial=True)
    with kstore.begin() as conn:
        row = conn.execute(sa.select(schema.rules).where(schema.rules.c.name == name)).first()
        if row is None:
            raise KioskInputError(f"name: no rule named {name!r}")
        merged = {
            key: getattr(row, key)
            for key in (
                "state",
                "start_min",
                "end_min",
                "days",
                "dates",
                "valid_from",
                "valid_until",
                "target",
                "priority",
            )
        }
        merged.update(changes)
        check_whole(merged)
        old = _row_dict(row)
        if all(getattr(row, key) == value for key, value in changes.items()):
            return old, old
        revision = _next_revision(conn)
        conn.execute(
            schema.rules.update()
            .where(schema.rules.c.name == name)
            .values(revision=revision, updated_at=clock.utcnow(), **changes)
        )
        _bump(conn, revision)
    return old, get(kstore, name)


def remove(kstore, name):
    """Delete a rule; return it. A missing rule is refused."""
    name = parse_name(name)
    with kstore.begin() as conn:
        row = conn.execute(sa.select(schema.rules).where(schema.rules.c.name == name)).first()
        if row is None:
            raise KioskInputError(f"name: no rule named {name!r}")
        conn.execute(schema.rules.delete().where(schema.rules.c.name == name))
        _bump(conn, _next_revision(conn))
    return _row_dict(row)


def list_rules(kstore, target=None):
    """All rules (or those with exactly this target), highest priority first."""
    query = sa.select(schema.rules).order_by(schema.rules.c.priority.desc(), schema.rules.c.name)
    if target is not None:
        query = query.where(schema.rules.c.target == parse_target(target)[0])
    with kstore.connect() as conn:
        return [_row_dict(row) for row in conn.execute(query)]


def load(kstore):
    """Rules as :class:`Rule` objects for schedule computation."""
    with kstore.connect() as conn:
        return [Rule.from_row(row) for row in conn.execute(sa.select(schema.rules))]


class Rule:
    """A rule in the form schedule computation uses."""

    __slots__ = (
        "name",
        "state",
        "days",
        "dates",
        "start",
        "end",
        "valid_from",
        "valid_until",
        "target",
        "kind",
        "value",
        "priority",
        "revision",
        "specificity",
        "key",
    )

    def __init__(
        self,
        name,
        state,
        start,
        end,
        days=None,
        dates=None,
        valid_from=None,
        valid_until=None,
        target="*",
        priority=0,
        revision=0,
    ):
        self.name = name
        self.state = state
        self.start = start
        self.end = end
        self.days = frozenset(days or ())
        self.dates = frozenset(datetime.date.fromisoformat(d) if isinstance(d, str) else d for d in (dates or ()))
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.target = target
        self.kind, self.value = inventory.parse_target(target)
        self.priority = priority
        self.revision = revision
        self.specificity = SPECIFICITY[self.kind]
        # The rank with the name last, so that comparing two rules never ties.
        self.key = (priority, self.specificity, revision, name)

    @classmethod
    def from_row(cls, row):
        # Ties go to the newer rule: the one created later (editing a rule
        # does not make it outrank rules created after it).
        return cls(
            row.name,
            row.state,
            row.start_min,
            row.end_min,
            row.days,
            row.dates,
            row.valid_from,
            row.valid_until,
            row.target,
            row.priority,
            row.created_revision,
        )

    @classmethod
    def from_fields(cls, name, revision=0, **fields):
        values = normalise(fields)
        check_whole(values)
        return cls(
            parse_name(name),
            values["state"],
            values["start_min"],
            values["end_min"],
            values["days"],
            values["dates"],
            values["valid_from"],
            values["valid_until"],
            values["target"],
            values["priority"],
            revision,
        )

    def applies_on(self, day):
        """True when a window of this rule starts on local date ``day``."""
        if self.valid_from and day < self.valid_from:
            return False
        if self.valid_until and day > self.valid_until:
            return False
        return day.weekday() in self.days or day in self.dates

    def rank(self):
        """Sort key: higher wins (priority, then specificity, then newer)."""
        return (self.priority, self.specificity, self.revision)
