"""
The inventory refresh on the master of masters: turns the ``kiosk`` grains
(collected on every node by :mod:`salt_kiosk.node.grain`) into inventory
updates with a change history.

The refresh trusts nothing a node reports: a grain is data a minion's owner
can set to anything (``grains:`` in the minion config overrides the grain
module). Every field it stores is checked first (:data:`FIELD_RULES`):
``ip`` an IPv4 address, ``mac`` a MAC address, ``code`` and ``campus`` names
(letters, digits, ``_ . -``, at most 64), ``role`` one of kiosk / relay /
central, ``hostname`` a host name (at most 253), ``release`` a PEP 440
version, ``serial`` / ``vendor`` / ``model`` / ``cpu`` printable text of at
most 255 characters without control characters, ``cpu_count`` / ``memory_mb``
/ ``disk_gb`` numbers in range. A field that fails is reported under
``conflicts`` (minion, field, the value escaped and capped) and is stored
nowhere: not in the asset row, not in the inventory, not in the history. The
whole grain is kept as JSON (``facts``, data only, never rendered) with the bad
fields removed and at most :data:`FACTS_MAX` bytes; a bigger grain keeps only
its checked fields.
"""

import datetime
import json
import logging
import re
import unicodedata

import sqlalchemy as sa

from salt_kiosk import clock, fanout, validate
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError
from salt_kiosk.inventory import safe_message
from salt_kiosk.node.grain import ROLES
from salt_kiosk.validate import show as shown

log = logging.getLogger(__name__)


#: Fields compared between refreshes (a change writes one history row each).
TRACKED = (
    "code",
    "role",
    "campus",
    "hostname",
    "ip",
    "mac",
    "release",
    "serial",
    "vendor",
    "model",
    "cpu",
    "cpu_count",
    "memory_mb",
    "disk_gb",
)


# --- the grain ------------------------------------------------------------------


#: Largest ``facts`` JSON stored per asset (bytes).
FACTS_MAX = 64 * 1024

_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$")
#: Unicode categories refused in free text: controls, format characters
#: (bidirectional overrides ...), surrogates, private use, unassigned, line and
#: paragraph separators.
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_TEXT_ACCEPTED = "1-255 printable characters, no control characters"


def _need_str(value, accepted):
    if not isinstance(value, str):
        raise KioskInputError(f"{shown(value)} is not text (accepted: {accepted})")
    return value


def _role(value):
    if value not in ROLES:
        raise KioskInputError(f"{shown(value)} is not a node role (accepted: {', '.join(ROLES)})")
    return value


def _hostname(value):
    text = _need_str(value, "a host name of letters, digits, '_', '.', '-', at most 253 characters").strip()
    if not _HOSTNAME_RE.match(text) or len(text) > 253:
        raise KioskInputError(
            f"{shown(value)} is not a host name (accepted: letters, digits, '_', '.', '-', at most 253 characters)"
        )
    return text


def _release(value):
    from salt_kiosk.node import release_install  # pylint: disable=import-outside-toplevel

    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or len(str(value)) > 64:
        raise KioskInputError(f"{shown(value)} is not a release version (accepted: PEP 440, e.g. 1.4.0)")
    version = release_install.check_version(value)
    if len(version) > 64:
        raise KioskInputError(f"{shown(value)} is not a release version (accepted: PEP 440, at most 64 characters)")
    return version


def _free_text(value):
    text = _need_str(value, _TEXT_ACCEPTED)
    if not text or len(text) > 255 or any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in text):
        raise KioskInputError(f"{shown(value)} is not accepted (accepted: {_TEXT_ACCEPTED})")
    return text


def _number(low, high, integer=True):
    kind = "an integer" if integer else "a number"

    def check(value):
        ok_type = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type) or not low <= value <= high:
            raise KioskInputError(f"{shown(value)} is not accepted (accepted: {kind} from {low} to {high})")
        return value

    return check


#: How each stored grain field is checked (returns the normalised value or raises).
FIELD_RULES = {
    "code": lambda v: validate.name(_need_str(v, "a kiosk code"), what="kiosk code"),
    "role": _role,
    "campus": lambda v: validate.name(_need_str(v, "a campus name"), what="campus name"),
    "hostname": _hostname,
    "ip": lambda v: validate.ipv4(_need_str(v, "a dotted-quad IPv4 address such as 10.1.0.21")),
    "mac": lambda v: validate.mac(_need_str(v, validate.MAC_FORMATS)),
    "release": _release,
    "serial": _free_text,
    "vendor": _free_text,
    "model": _free_text,
    "cpu": _free_text,
    "cpu_count": _number(1, 1_000_000),
    "memory_mb": _number(0, 2**40),
    "disk_gb": _number(0, 1e9, integer=False),
}


def check_grain(grain):
    """
    Check the stored fields of one ``kiosk`` grain. Return ``(clean, problems)``:
    ``clean`` holds every tracked field that passed (normalised), ``problems``
    ``{field: message}`` for each that did not, the message naming the field
    and showing the value escaped and capped.
    """
    clean, problems = {}, {}
    for field in TRACKED:
        value = grain.get(field)
        if value is None or value == "":
            continue
        try:
            clean[field] = FIELD_RULES[field](value)
        except KioskInputError as exc:
            problems[field] = f"kiosk:{field} grain: {safe_message(exc, value)}"
    return clean, problems


def _kept(previous, fields):
    """The previously stored values of ``fields`` that still pass the checks."""
    kept = {}
    for field in fields:
        value = previous.get(field)
        if value is None:
            continue
        try:
            kept[field] = FIELD_RULES[field](value)
        except KioskInputError:
            continue
    return kept


def _facts(grain, clean):
    """The grain as stored JSON: bad fields removed, at most FACTS_MAX bytes."""
    facts = {key: value for key, value in grain.items() if key not in TRACKED}
    facts.update(clean)
    try:
        text = json.dumps(facts, sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):
        text = None
    if text is not None and len(text.encode()) <= FACTS_MAX:
        return text, None
    size = "not JSON-encodable" if text is None else f"{len(text.encode())} bytes of JSON"
    kept = dict(clean, facts_truncated=True)
    return json.dumps(kept, sort_keys=True), (
        f"kiosk grain: {size}, over the {FACTS_MAX}-byte cap; only its checked fields are kept"
    )


def _flat(grain):
    return {field: grain.get(field) for field in TRACKED}


def _before(values):
    """Stored earlier values, with anything that fails today's checks shown escaped."""
    out = {}
    for field, value in values.items():
        if value is None:
            out[field] = None
            continue
        try:
            out[field] = FIELD_RULES[field](value)
        except KioskInputError:
            out[field] = shown(value)
    return out


def _text(value):
    return None if value is None else (value if isinstance(value, str) else json.dumps(value))


def apply_grains(kstore, grains, not_seen_days=7, now=None):
    """
    Upsert the assets from ``{minion_id: kiosk grain}``, write one history row
    per changed field, update the inventory's IP/MAC of known kiosks, and
    report identity changes and kiosks not seen for ``not_seen_days``.
    """
    now = now or clock.utcnow()
    days = validate_days(not_seen_days)
    report = {"seen": 0, "new": [], "changed": {}, "identity_changed": {}, "conflicts": {}, "not_seen": {}}
    with kstore.begin() as conn:
        stored = {row.minion_id: row for row in conn.execute(sa.select(schema.assets)).all()}
        facts_of = {m: _stored_facts(r.facts) for m, r in stored.items()}
        inventory_rows = {row.minion_id: row for row in conn.execute(sa.select(schema.kiosks)).all()}
        code_owner = {row.code: row.minion_id for row in inventory_rows.values()}
        for minion, grain in sorted(grains.items()):
            if not isinstance(grain, dict) or not grain:
                continue
            try:
                validate.minion_id(minion)
            except KioskInputError:
                report["conflicts"][shown(minion)] = (
                    "minion id is not valid (accepted: 1-255 characters without whitespace or slashes); nothing stored"
                )
                continue
            report["seen"] += 1
            new, bad = check_grain(grain)
            problems = list(bad.values())
            # A field reported bad keeps its last good value in the asset row:
            # the bad one is stored nowhere, and its absence is no change.
            stored_values = dict(new, **_kept(facts_of.get(minion, {}), bad))
            facts, facts_problem = _facts(grain, stored_values)
            if facts_problem:
                problems.append(facts_problem)
            inv = inventory_rows.get(minion)
            if inv is not None and new.get("code") and new["code"] != inv.code and new.get("role", "kiosk") == "kiosk":
                # The identity moved: report it, keep the inventory's code.
                report["identity_changed"][minion] = {"inventory_code": inv.code, "reported": new["code"]}
                new["code"] = inv.code
            elif inv is None and new.get("code") in code_owner and code_owner[new["code"]] != minion:
                problems.append(
                    f"reports code {new['code']!r}, which belongs to {code_owner[new['code']]!r} in the inventory"
                )
            if problems:
                report["conflicts"][minion] = "; ".join(problems)
            if new.get("code") is not None:
                stored_values["code"] = new["code"]
            values = {
                "code": stored_values.get("code"),
                "role": stored_values.get("role"),
                "campus": stored_values.get("campus"),
                "hostname": stored_values.get("hostname"),
                "ip": stored_values.get("ip"),
                "mac": stored_values.get("mac"),
                "release": stored_values.get("release"),
                "facts": facts,
                "last_seen": now,
            }
            before = _flat(facts_of.get(minion, {}))
            if inv is not None:
                # What the operators see in the inventory is the old value.
                before.update(code=inv.code, ip=inv.ip, mac=inv.mac)
            before = _before(before)
            if minion not in stored:
                conn.execute(schema.assets.insert().values(minion_id=minion, first_seen=now, **values))
                report["new"].append(minion)
                compared = ("ip", "mac") if inv is not None else ()
            else:
                conn.execute(schema.assets.update().where(schema.assets.c.minion_id == minion).values(**values))
                compared = TRACKED
            changes = {
                field: (before.get(field), new.get(field))
                for field in compared
                if new.get(field) is not None and before.get(field) != new.get(field)
            }
            if changes:
                conn.execute(
                    schema.asset_history.insert(),
                    [
                        {
                            "minion_id": minion,
                            "field": field,
                            "old": _text(old_v),
                            "new": _text(new_v),
                            "changed_at": now,
                        }
                        for field, (old_v, new_v) in sorted(changes.items())
                    ],
                )
                report["changed"][minion] = {f: {"old": o, "new": n} for f, (o, n) in sorted(changes.items())}
            if inv is not None and (new.get("ip") or new.get("mac")):
                update = {}
                if new.get("ip") and new["ip"] != inv.ip:
                    update["ip"] = new["ip"]
                if new.get("mac") and new["mac"] != inv.mac:
                    update["mac"] = new["mac"]
                if update:
                    conn.execute(
                        schema.kiosks.update()
                        .where(schema.kiosks.c.minion_id == minion)
                        .values(updated_at=now, **update)
                    )
        cutoff = now - datetime.timedelta(days=days)
        for row in conn.execute(sa.select(schema.assets.c.minion_id, schema.assets.c.last_seen)).all():
            if row.last_seen < cutoff:
                report["not_seen"][row.minion_id] = clock.iso(row.last_seen)
        for minion in inventory_rows:
            if minion not in grains and minion not in stored:
                report["not_seen"].setdefault(minion, None)
    return report


def _stored_facts(text):
    try:
        facts = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return facts if isinstance(facts, dict) else {}


def validate_days(value):
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise KioskInputError(f"not_seen_days {value!r} is not a number of days (accepted: 0.01-3650)") from None
    if not 0.01 <= days <= 3650:
        raise KioskInputError(f"not_seen_days {value!r} is out of range (accepted: 0.01-3650)")
    return days


def refresh(opts, kstore, not_seen_days=7, timeout=30):
    """Collect the ``kiosk`` grain from every minion through the syndic tree and apply it."""
    validate_days(not_seen_days)
    answers = fanout.run_jobs(
        opts, {"grains": {"tgt": "*", "tgt_type": "glob", "fun": "grains.item", "arg": ["kiosk"]}}, timeout
    )["grains"]
    grains = {
        minion: (answer["ret"] or {}).get("kiosk")
        for minion, answer in answers.items()
        if isinstance(answer.get("ret"), dict)
    }
    grains = {m: g for m, g in grains.items() if isinstance(g, dict)}
    report = apply_grains(kstore, grains, not_seen_days=not_seen_days)
    report["answered"] = sorted(grains)
    return report


def history(kstore, minion=None, code=None, limit=100):
    """Change history of one kiosk (by minion id or code), newest first."""
    query = sa.select(schema.asset_history).order_by(schema.asset_history.c.id.desc()).limit(int(limit))
    if code is not None and minion is None:
        with kstore.connect() as conn:
            row = conn.execute(sa.select(schema.kiosks.c.minion_id).where(schema.kiosks.c.code == code)).first()
            if row is None:
                row = conn.execute(sa.select(schema.assets.c.minion_id).where(schema.assets.c.code == code)).first()
        if row is None:
            raise KioskInputError(f"kiosk {code!r} is unknown (neither an inventory code nor a reported one)")
        minion = row.minion_id
    if minion is not None:
        query = query.where(schema.asset_history.c.minion_id == minion)
    with kstore.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {"minion_id": r.minion_id, "field": r.field, "old": r.old, "new": r.new, "changed_at": clock.iso(r.changed_at)}
        for r in rows
    ]


def asset(kstore, minion):
    """
    The asset row of one node as the last refresh stored it: ``minion_id``,
    the checked fields, ``facts`` (the checked grain, as data), ``first_seen``
    and ``last_seen``; None when no refresh has seen it.
    """
    minion = validate.minion_id(minion)
    with kstore.connect() as conn:
        row = conn.execute(sa.select(schema.assets).where(schema.assets.c.minion_id == minion)).first()
    if row is None:
        return None
    entry = {
        key: getattr(row, key) for key in ("minion_id", "code", "role", "campus", "hostname", "ip", "mac", "release")
    }
    entry.update(
        facts=_stored_facts(row.facts), first_seen=clock.iso(row.first_seen), last_seen=clock.iso(row.last_seen)
    )
    return entry
