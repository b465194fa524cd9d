"""
The kiosk inventory: CSV import, listing and target resolution.

CSV files have the header ``code,minion_id,campus,groups,ip,mac,vnc_port``
(column order free, groups separated by ``;``). ``code``, ``minion_id`` and
``campus`` are required; ``groups``, ``ip``, ``mac`` and ``vnc_port`` may be
empty. Every row is checked before anything is stored; a file with a bad row
stores nothing unless ``skip_bad`` is asked for, and then only the good rows.

Targets select kiosks: ``*`` (all), ``campus:NAME``, ``group:NAME`` or
``id:GLOB`` (shell glob on the minion id).

Where CSV files come from (:func:`import_source`, behind ``salt-run
kiosk_inventory.import_csv``): only files inside the directories listed under
``kiosk:import_dirs`` in the master config (the path is resolved with
``realpath`` first, so symlinks and ``..`` cannot leave them), or ``salt://``
URLs served by the master's own file server (``file_roots``, gitfs ...). A file
is at most :data:`MAX_CSV_BYTES` of UTF-8 text. Error messages quote only the
offending field, escaped and capped in length, never a whole line: a file that
is not an inventory CSV gets an error that says so without echoing it.
"""

import contextlib
import csv
import fnmatch
import io
import os
import stat
import tempfile

import sqlalchemy as sa

from salt_kiosk import clock, validate
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError
from salt_kiosk.validate import show as shown

COLUMNS = ("code", "minion_id", "campus", "groups", "ip", "mac", "vnc_port")
#: Rows per INSERT/UPDATE round trip of an import.
WRITE_BATCH = 1000
REQUIRED = ("code", "minion_id", "campus")
TARGET_FORMS = "'*', 'campus:NAME', 'group:NAME' or 'id:GLOB'"

#: Largest inventory CSV read (bytes).
MAX_CSV_BYTES = 16 * 1024 * 1024
#: Longest value a CSV field may hold (characters); ``groups`` holds several names.
MAX_FIELD = {"groups": 2048}
MAX_FIELD_DEFAULT = 255
#: How much of a bad value an error message shows.
SHOWN_MAX = 64


def safe_message(exc, value):
    """
    The message of a validation error with the bad ``value`` shown escaped and
    capped (:func:`salt_kiosk.validate.show`) instead of in full.
    """
    text = str(exc)
    full = repr(value)
    if full in text:
        return text.replace(full, validate.show(value))
    if len(text) > 4 * SHOWN_MAX + 200:
        return f"{shown(value)} is not accepted"
    return text


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


def _capped(value):
    return value if len(value) <= SHOWN_MAX else value[:SHOWN_MAX] + "..."


def _row_error(line, field, value, exc):
    return RowError(line, field, _capped(value), safe_message(exc, value))


def _header_error(header):
    """The header's problems, naming expected columns only: the header itself is never echoed."""
    missing = [c for c in COLUMNS if c not in header]
    unknown = [index for index, c in enumerate(header, start=1) if c not in COLUMNS]
    duplicate = sorted({c for c in header if c in COLUMNS and header.count(c) > 1})
    if not (missing or unknown or duplicate):
        return None
    parts = [f"missing {missing}"]
    if unknown:
        parts.append(
            f"{len(unknown)} unknown column(s) at position(s) {', '.join(map(str, unknown[:10]))}"
            + (" ..." if len(unknown) > 10 else "")
        )
    if duplicate:
        parts.append(f"duplicate {duplicate}")
    return (
        f"line 1: bad CSV header: {', '.join(parts)} (expected the columns {','.join(COLUMNS)}; "
        "is this an inventory CSV file?)"
    )


def parse_csv(text, known_campuses):
    """
    Parse and validate CSV ``text``. Return ``(rows, errors)``: ``rows`` are
    normalised kiosk dicts with the ``line`` they came from, ``errors`` a list of
    :class:`RowError` (line numbers count the header as line 1).
    """
    if "\x00" in text:
        raise KioskInputError(
            f"the file holds NUL bytes: it is not a CSV text file (expected the header {','.join(COLUMNS)})"
        )
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise KioskInputError(f"the CSV file is empty (expected the header {','.join(COLUMNS)})") from None
    except csv.Error:
        raise KioskInputError(
            f"line 1: bad CSV header: not readable as CSV (expected the columns {','.join(COLUMNS)}; "
            "is this an inventory CSV file?)"
        ) from None
    header = [column.strip().lower() for column in header]
    problem = _header_error(header)
    if problem:
        raise KioskInputError(problem)
    rows, errors = [], []
    seen_code, seen_minion = {}, {}
    number = 1
    while True:
        number += 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # The csv module's message names no content (field size limit,
            # unterminated quote); the rest of the file cannot be read.
            errors.append(RowError(number, "*", "", f"not readable as CSV ({str(exc)[:100]})"))
            break
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(header):
            errors.append(RowError(number, "*", "", f"has {len(fields)} fields, the header has {len(header)}"))
            continue
        raw = {column: value.strip() for column, value in zip(header, fields)}
        row, row_errors = {"line": number}, []
        for column, value in raw.items():
            limit = MAX_FIELD.get(column, MAX_FIELD_DEFAULT)
            if len(value) > limit:
                row_errors.append(
                    RowError(
                        number,
                        column,
                        _capped(value),
                        f"{shown(value)} is too long (accepted: at most {limit} characters)",
                    )
                )
                raw[column] = ""
        for column in REQUIRED:
            if not raw[column] and not any(e.field == column for e in row_errors):
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
                row_errors.append(RowError(number, column, value, f"{value!r} is already used on line {seen[value]}"))
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


def import_csv(kstore, path, skip_bad=False, replace=False):
    """
    Import kiosks from the CSV file at ``path`` into ``kstore``.

    Rows are upserted by kiosk code. With ``replace`` kiosks absent from the file
    are removed. The whole import is one transaction. Return a summary with the
    ``added``, ``updated``, ``unchanged``, ``removed`` codes and the ``rejected``
    rows; raise :class:`KioskInputError` listing every bad row (line, field,
    value, reason) when there is one and ``skip_bad`` is false.
    """
    label = str(path)
    if not os.path.isfile(path):
        raise KioskInputError(f"inventory file {shown(label, 200)} does not exist or is not a file")
    return import_text(kstore, _read_file(path, label), label, skip_bad=skip_bad, replace=replace)


def import_source(opts, kstore, source, skip_bad=False, replace=False):
    """
    Import kiosks from ``source``: a CSV file inside one of the directories
    listed under ``kiosk:import_dirs`` in ``opts``, or a ``salt://`` URL served
    by the master's file server. Anything else is refused before it is read.
    See :func:`import_csv` for the rest.
    """
    text = read_source(opts, source)
    return import_text(kstore, text, str(source), skip_bad=skip_bad, replace=replace)


def import_dirs(opts):
    """The configured ``kiosk:import_dirs``, resolved with ``realpath``."""
    value = (opts.get("kiosk") or {}).get("import_dirs")
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise KioskInputError(
            f"kiosk:import_dirs {shown(value)} is not a list of directories "
            "(accepted: absolute directory paths, e.g. [/srv/kiosk/inventory])"
        )
    dirs = []
    for entry in value:
        if not isinstance(entry, str) or not os.path.isabs(entry):
            raise KioskInputError(
                f"kiosk:import_dirs entry {shown(entry)} is not an absolute directory path "
                "(accepted: absolute directory paths, e.g. /srv/kiosk/inventory)"
            )
        dirs.append(os.path.realpath(entry))
    return dirs


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def read_source(opts, source):
    """
    Return the text of an inventory CSV ``source`` (a path inside
    ``kiosk:import_dirs`` or a ``salt://`` URL), refusing anything else
    before it is opened.
    """
    if not isinstance(source, str) or not source.strip():
        raise KioskInputError(
            f"inventory source {shown(source)} is not a path (accepted: a CSV file inside kiosk:import_dirs "
            "or a salt:// URL)"
        )
    if source.startswith("salt://"):
        return _read_salt_url(opts, source)
    if "://" in source:
        raise KioskInputError(
            f"inventory source {shown(source, 200)} has an unsupported scheme "
            "(accepted: a CSV file inside kiosk:import_dirs or a salt:// URL)"
        )
    if not os.path.isabs(source) or "\x00" in source:
        raise KioskInputError(
            f"inventory file {shown(source, 200)} is not an absolute path "
            "(accepted: a CSV file inside kiosk:import_dirs or a salt:// URL)"
        )
    allowed = import_dirs(opts)
    if not allowed:
        raise KioskInputError(
            f"inventory file {shown(source, 200)} refused: kiosk:import_dirs is not set. CSV files are read only "
            "from the directories listed under kiosk:import_dirs in the master config (e.g. kiosk: "
            "{import_dirs: [/srv/kiosk/inventory]}) or from salt:// URLs"
        )
    real = os.path.realpath(source)
    if not any(_inside(real, folder) for folder in allowed):
        # Refused before it is opened: the answer says nothing about the file.
        raise KioskInputError(
            f"inventory file {shown(source, 200)} is outside kiosk:import_dirs ({', '.join(allowed)}) "
            "(accepted: a CSV file inside those directories or a salt:// URL; add the directory to "
            "kiosk:import_dirs in the master config)"
        )
    return _read_file(real, source)


def _read_file(path, label):
    """At most MAX_CSV_BYTES of UTF-8 text from the regular file ``path``; symlinks are not followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise KioskInputError(
            f"inventory file {shown(str(label), 200)} cannot be opened ({exc.strerror}; accepted: a regular file)"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise KioskInputError(f"inventory file {shown(str(label), 200)} is not a regular file")
        data = handle.read(MAX_CSV_BYTES + 1)
    return _decode(data, label)


def _decode(data, label):
    if len(data) > MAX_CSV_BYTES:
        raise KioskInputError(
            f"inventory file {shown(str(label), 200)} is larger than {MAX_CSV_BYTES} bytes (accepted: an "
            f"inventory CSV up to {MAX_CSV_BYTES // 1024 // 1024} MiB)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KioskInputError(
            f"inventory file {shown(str(label), 200)} is not UTF-8 text (bad byte at offset {exc.start}; "
            "accepted: a UTF-8 CSV file)"
        ) from None


def _read_salt_url(opts, url):
    """Fetch ``salt://path[?saltenv=env]`` from the master's own file server (``FSClient``)."""
    import salt.fileclient  # pylint: disable=import-outside-toplevel
    import salt.utils.url  # pylint: disable=import-outside-toplevel

    path, saltenv = salt.utils.url.parse(url)
    bad = (
        not path
        or len(url) > 1024
        or ".." in path.split("/")
        or "\\" in path
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in url)
    )
    if bad:
        raise KioskInputError(
            f"inventory source {shown(url, 200)} is not a usable salt:// URL "
            "(accepted: salt://path/to/file.csv or salt://path/to/file.csv?saltenv=ENV, no '..')"
        )
    saltenv = saltenv or "base"
    client = salt.fileclient.FSClient(opts)
    try:
        with tempfile.TemporaryDirectory(prefix="kiosk-import-") as scratch:
            dest = os.path.join(scratch, "inventory.csv")
            got = client.get_file(f"salt://{path}", dest=dest, saltenv=saltenv)
            if not got or not os.path.isfile(dest):
                raise KioskInputError(
                    f"inventory source {shown(url, 200)} is not on the master's file server (saltenv "
                    f"{shown(saltenv)}; accepted: a file under the master's file_roots or another fileserver backend)"
                )
            return _read_file(dest, url)
    finally:
        with contextlib.suppress(Exception):
            client.destroy()


def import_text(kstore, text, label, skip_bad=False, replace=False):
    """
    Import kiosks from CSV ``text`` (``label`` names where it came from in
    errors). See :func:`import_csv`.
    """
    label = str(label)
    path = label if label.isprintable() and len(label) <= 200 else shown(label, 200)
    known = set(kstore.campus_rows())
    rows, errors = parse_csv(text, known)
    summary = {"added": [], "updated": [], "unchanged": [], "removed": [], "rejected": []}
    now = clock.utcnow()
    with kstore.begin() as conn:
        existing = {row.code: row for row in conn.execute(sa.select(schema.kiosks))}
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
                conn.execute(schema.kiosks.delete().where(schema.kiosks.c.code.in_(gone)))
            summary["removed"] = gone
        inserts, updates = [], []
        for row in accepted:
            values = {k: row[k] for k in COLUMNS}
            old = existing.get(row["code"])
            if old is None:
                inserts.append({"created_at": now, "updated_at": now, **values})
                summary["added"].append(row["code"])
            elif _kiosk_dict(old) != values:
                updates.append({"old_code": row["code"], "updated_at": now, **values})
                summary["updated"].append(row["code"])
            else:
                summary["unchanged"].append(row["code"])
        # Many rows per statement (executemany), not one round trip per row.
        for chunk in range(0, len(inserts), WRITE_BATCH):
            conn.execute(schema.kiosks.insert(), inserts[chunk : chunk + WRITE_BATCH])
        if updates:
            # The SET clause comes from the parameters' column keys.
            statement = schema.kiosks.update().where(schema.kiosks.c.code == sa.bindparam("old_code"))
            for chunk in range(0, len(updates), WRITE_BATCH):
                conn.execute(statement, updates[chunk : chunk + WRITE_BATCH])
        if summary["added"] or summary["updated"] or summary["removed"]:
            _bump_revision(conn)
    return summary


def _bump_revision(conn):
    meta = schema.meta
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
        raise KioskInputError(f"{validate.show(target)} is not a kiosk target (accepted: {TARGET_FORMS})")
    if kind in ("campus", "group"):
        validate.name(value, what=f"{kind} name")
    else:
        validate.minion_glob(value)  # at most 255 characters, no control or bidi characters
    return kind, value


def list_kiosks(kstore, target="*"):
    """
    Return the kiosks matching ``target`` as dicts, ordered by campus and code.
    """
    kind, value = parse_target(target)
    query = sa.select(schema.kiosks).order_by(schema.kiosks.c.campus, schema.kiosks.c.code)
    if kind == "campus":
        query = query.where(schema.kiosks.c.campus == value)
    with kstore.connect() as conn:
        found = [_kiosk_dict(row) for row in conn.execute(query)]
    if kind == "group":
        found = [k for k in found if value in k["groups"]]
    elif kind == "id":
        found = [k for k in found if fnmatch.fnmatchcase(k["minion_id"], value)]
    return found


def find_kiosk(kstore, kiosk):
    """The inventory row of one kiosk, by minion id or code; refused when there is none."""
    for entry in list_kiosks(kstore, "*"):
        if kiosk in (entry["minion_id"], entry["code"]):
            return entry
    raise KioskInputError(f"kiosk: {kiosk!r} is not in the inventory (give a minion id or kiosk code)")


def by_campus(kiosk_list):
    """Group kiosk dicts by campus: ``{campus: [kiosk, ...]}``."""
    grouped = {}
    for kiosk in kiosk_list:
        grouped.setdefault(kiosk["campus"], []).append(kiosk)
    return grouped
