"""
The kiosk inventory: CSV import, listing and target resolution.

CSV files have the header ``code,minion_id,campus,groups,ip,mac,vnc_port``
(column order free, groups separated by ``;``). ``code``, ``minion_id`` and
``campus`` are required; ``groups``, ``ip``, ``mac`` and ``vnc_port`` may be
empty. Every row is checked before anything is stored; a file with a bad row
stores nothing unless ``skip_bad`` is asked for, and then only the good rows.

Targets select kiosks: ``*`` (all), ``campus:NAME``, ``group:NAME`` or
``id:GLOB`` (shell glob on the minion id).
"""

import csv
import fnmatch
import io
import os

import sqlalchemy as sa

from salt_kiosk import store as kstore
from salt_kiosk import validate
from salt_kiosk.errors import KioskInputError

COLUMNS = ("code", "minion_id", "campus", "groups", "ip", "mac", "vnc_port")
REQUIRED = ("code", "minion_id", "campus")
TARGET_FORMS = "'*', 'campus:NAME', 'group:NAME' or 'id:GLOB'"


class RowError:
    """One problem in one CSV row."""

    def __init__(self, line, field, value, message):
        self.line = line
        self.field = field
        self.value = value
        self.message = message

    def as_dict(self):
        return {"line": self.line, "field": self.field, "value": self.value, "error": self.message}

    def __str__(self):
        return f"line {self.line}, field {self.field!r}: {self.message}"


def _row_error(line, field, value, exc):
    return RowError(line, field, value, str(exc))


def parse_csv(text, known_campuses):
    """
    Parse and validate CSV ``text``. Return ``(rows, errors)``: ``rows`` are
    normalised kiosk dicts with the ``line`` they came from, ``errors`` a list of
    :class:`RowError` (line numbers count the header as line 1).
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise KioskInputError(f"the CSV file is empty (expected the header {','.join(COLUMNS)})") from None
    header = [column.strip().lower() for column in header]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise KioskInputError(
            f"line 1: bad CSV header {','.join(header)!r}: missing {missing}, unknown {unknown} "
            f"(expected the columns {','.join(COLUMNS)})"
        )
    rows, errors = [], []
    seen_code, seen_minion = {}, {}
    for number, fields in enumerate(reader, start=2):
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(header):
            errors.append(
                RowError(number, "*", ",".join(fields), f"has {len(fields)} fields, the header has {len(header)}")
            )
            continue
        raw = {column: value.strip() for column, value in zip(header, fields)}
        row, row_errors = {"line": number}, []
        for column in REQUIRED:
            if not raw[column]:
                row_errors.append(RowError(number, column, "", f"{column} is required"))
        checks = (
            ("code", lambda v: validate.name(v, what="kiosk code")),
            ("minion_id", validate.minion_id),
            ("campus", lambda v: validate.name(v, what="campus name")),
            ("ip", validate.ipv4),
            ("mac", validate.mac),
            ("vnc_port", validate.port),
        )
        for column, check in checks:
            if not raw[column]:
                row[column] = None
                continue
            try:
                row[column] = check(raw[column])
            except KioskInputError as exc:
                row_errors.append(_row_error(number, column, raw[column], exc))
        groups = []
        for group in filter(None, (g.strip() for g in raw["groups"].split(";"))):
            try:
                groups.append(validate.name(group, what="group name"))
            except KioskInputError as exc:
                row_errors.append(_row_error(number, "groups", group, exc))
        row["groups"] = sorted(set(groups))
        campus = row.get("campus")
        if campus and campus not in known_campuses:
            row_errors.append(
                RowError(
                    number,
                    "campus",
                    campus,
                    f"unknown campus {campus!r} (configured campuses: {', '.join(sorted(known_campuses)) or 'none'}; "
                    "add it under kiosk:campuses in the master config)",
                )
            )
        for column, seen in (("code", seen_code), ("minion_id", seen_minion)):
            value = row.get(column)
            if value and value in seen:
                row_errors.append(
                    RowError(number, column, value, f"{value!r} is already used on line {seen[value]}")
                )
            elif value:
                seen[value] = number
        if row_errors:
            errors.extend(row_errors)
        else:
            rows.append(row)
    return rows, errors


def _kiosk_dict(row):
    return {
        "code": row.code,
        "minion_id": row.minion_id,
        "campus": row.campus,
        "groups": list(row.groups or []),
        "ip": row.ip,
        "mac": row.mac,
        "vnc_port": row.vnc_port,
    }


def import_csv(store, path, skip_bad=False, replace=False):
    """
    Import kiosks from the CSV file at ``path`` into ``store``.

    Rows are upserted by kiosk code. With ``replace`` kiosks absent from the file
    are removed. The whole import is one transaction. Return a summary with the
    ``added``, ``updated``, ``unchanged``, ``removed`` codes and the ``rejected``
    rows; raise :class:`KioskInputError` listing every bad row (line, field,
    value, reason) when there is one and ``skip_bad`` is false.
    """
    if not os.path.isfile(path):
        raise KioskInputError(f"inventory file {path!r} does not exist or is not a file")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        text = handle.read()
    known = set(store.campus_rows())
    rows, errors = parse_csv(text, known)
    summary = {"added": [], "updated": [], "unchanged": [], "removed": [], "rejected": []}
    now = kstore.utcnow()
    with store.begin() as conn:
        existing = {row.code: row for row in conn.execute(sa.select(kstore.kiosks))}
        owner = {row.minion_id: row.code for row in existing.values()}
        incoming = {row["code"] for row in rows}
        accepted = []
        for row in rows:
            other = owner.get(row["minion_id"])
            if other is not None and other != row["code"] and not (replace and other not in incoming):
                errors.append(
                    RowError(
                        row["line"],
                        "minion_id",
                        row["minion_id"],
                        f"minion id {row['minion_id']!r} already belongs to kiosk {other!r}",
                    )
                )
                continue
            accepted.append(row)
        errors.sort(key=lambda e: e.line)
        summary["rejected"] = [e.as_dict() for e in errors]
        if errors and not skip_bad:
            raise KioskInputError(
                f"{path}: {len(errors)} bad row(s), nothing imported "
                "(pass skip_bad=True to import the good rows):\n  " + "\n  ".join(str(e) for e in errors)
            )
        if replace:
            gone = sorted(set(existing) - incoming)
            if gone:
                conn.execute(kstore.kiosks.delete().where(kstore.kiosks.c.code.in_(gone)))
            summary["removed"] = gone
        for row in accepted:
            values = {k: row[k] for k in COLUMNS}
            old = existing.get(row["code"])
            if old is None:
                conn.execute(kstore.kiosks.insert().values(created_at=now, updated_at=now, **values))
                summary["added"].append(row["code"])
            elif _kiosk_dict(old) != values:
                conn.execute(
                    kstore.kiosks.update()
                    .where(kstore.kiosks.c.code == row["code"])
                    .values(updated_at=now, **values)
                )
                summary["updated"].append(row["code"])
            else:
                summary["unchanged"].append(row["code"])
        if summary["added"] or summary["updated"] or summary["removed"]:
            _bump_revision(conn)
    return summary


def _bump_revision(conn):
    meta = kstore.meta
    current = conn.execute(sa.select(meta.c.value).where(meta.c.key == "inventory_revision")).scalar()
    value = str(int(current or 0) + 1)
    if current is None:
        conn.execute(meta.insert().values(key="inventory_revision", value=value))
    else:
        conn.execute(meta.update().where(meta.c.key == "inventory_revision").values(value=value))


def parse_target(target):
    """
    Split a kiosk target into ``(kind, value)``; kind is ``all``, ``campus``,
    ``group`` or ``id``.
    """
    if target is None:
        raise KioskInputError(f"a target is required (accepted: {TARGET_FORMS})")
    text = str(target).strip()
    if text == "*":
        return "all", "*"
    kind, sep, value = text.partition(":")
    if not sep or kind not in ("campus", "group", "id") or not value:
        raise KioskInputError(f"{target!r} is not a kiosk target (accepted: {TARGET_FORMS})")
    if kind in ("campus", "group"):
        validate.name(value, what=f"{kind} name")
    return kind, value


def list_kiosks(store, target="*"):
    """
    Return the kiosks matching ``target`` as dicts, ordered by campus and code.
    """
    kind, value = parse_target(target)
    query = sa.select(kstore.kiosks).order_by(kstore.kiosks.c.campus, kstore.kiosks.c.code)
    if kind == "campus":
        query = query.where(kstore.kiosks.c.campus == value)
    with store.connect() as conn:
        found = [_kiosk_dict(row) for row in conn.execute(query)]
    if kind == "group":
        found = [k for k in found if value in k["groups"]]
    elif kind == "id":
        found = [k for k in found if fnmatch.fnmatchcase(k["minion_id"], value)]
    return found


def by_campus(kiosk_list):
    """Group kiosk dicts by campus: ``{campus: [kiosk, ...]}``."""
    grouped = {}
    for kiosk in kiosk_list:
        grouped.setdefault(kiosk["campus"], []).append(kiosk)
    return grouped
