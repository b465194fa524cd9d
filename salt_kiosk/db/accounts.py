"""
Least-privilege MySQL/MariaDB accounts of the kiosk database, by role.

``owner``
    The master of masters: every privilege on the kiosk database (DDL for the
    schema migrations, all reads and writes).
``relay``
    A relay's ``kiosk_mysql`` returner (its syndic master's job cache):
    ``SELECT, INSERT, UPDATE`` on the result tables (``kiosk_jobs``,
    ``kiosk_job_minions``, ``kiosk_returns``, ``kiosk_events``) and ``SELECT``
    on ``kiosk_schema`` (to check the version). Nothing else: no DDL, no
    DELETE, no rules, inventory, tasks or scheduler tables, so a relay that is
    taken over can write results, never what the master of masters acts on.

Kiosks get no account at all.

:func:`ensure_account` creates the account or brings its password and grants
in line, through an administrative connection (an account allowed to create
users and grant, e.g. ``root`` on the database host). User, host and database
names are checked against strict patterns before they reach SQL; the password
only ever travels as a bound parameter and never appears in a result.
"""

import re

import sqlalchemy as sa

from salt_kiosk.db import store
from salt_kiosk.errors import KioskInputError, KioskStoreError

RESULT_TABLES = ("kiosk_jobs", "kiosk_job_minions", "kiosk_returns", "kiosk_events")

#: role -> {table or "*": set of privileges}
ROLES = {
    "owner": {"*": {"ALL PRIVILEGES"}},
    "relay": dict({table: {"SELECT", "INSERT", "UPDATE"} for table in RESULT_TABLES}, kiosk_schema={"SELECT"}),
}

_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9_.%:-]{1,255}$")
_DB_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _check(value, pattern, what, accepted):
    if not isinstance(value, str) or not pattern.match(value):
        raise KioskInputError(f"{what} {value!r} is not accepted (accepted: {accepted})")
    return value


def check_role(role):
    """Return ``role`` if it is a known account role."""
    if role not in ROLES:
        raise KioskInputError(f"account role {role!r} is unknown (accepted: {', '.join(sorted(ROLES))})")
    return role


def wanted_privileges(role, database):
    """``{(database, table or "*"): {privileges}}`` of ``role``."""
    _check(database, _DB_RE, "database name", "letters, digits and '_', at most 64")
    return {(database, table): set(privs) for table, privs in ROLES[check_role(role)].items()}


def _grantee(user, host):
    return f"'{user}'@'{host}'"


_GRANT_RE = re.compile(r"^GRANT (.+?) ON (\S+) TO ")


def current_privileges(conn, user, host):
    """The account's privileges, shaped as :func:`wanted_privileges` (from ``SHOW GRANTS``)."""
    have = {}
    for (line,) in conn.exec_driver_sql("SHOW GRANTS FOR %s@%s", (user, host)).all():
        match = _GRANT_RE.match(line)
        if not match:
            continue
        privileges = {p.strip() for p in match.group(1).split(",")} - {"USAGE"}
        if not privileges:
            continue
        schema, _dot, table = match.group(2).partition(".")
        key = (schema.strip("`"), "*" if table == "*" else table.strip("`"))
        have.setdefault(key, set()).update(privileges)
    return have


def ensure_account(admin_url, user, password, role, host="%", database=None, test=False):
    """
    Create or update the database account ``user``@``host`` for ``role`` on
    ``database`` (default: the admin URL's database) through ``admin_url``.

    Return ``{"user", "host", "role", "database", "changes": {...}}`` where
    changes may hold ``account: created``, ``password: changed`` and
    ``privileges: {old, new}``; with ``test`` nothing is changed and the
    changes say what would be.
    """
    _check(user, _USER_RE, "database user", "letters, digits, '_', '.', '-', at most 80")
    _check(host, _HOST_RE, "database host pattern", "a host name, an address or a pattern with '%'")
    if not isinstance(password, str) or not password or len(password) > 256:
        raise KioskInputError("the account's password is empty or longer than 256 characters")
    url = sa.engine.make_url(admin_url)
    if url.get_backend_name() not in ("mysql", "mariadb"):
        raise KioskInputError(f"database accounts need MySQL or MariaDB, not {url.get_backend_name()!r}")
    database = database or url.database
    wanted = wanted_privileges(role, database)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    changes = {}
    try:
        with engine.connect() as conn:
            exists = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM mysql.user WHERE User = %s AND Host = %s", (user, host)
            ).scalar()
            if not exists:
                changes["account"] = "created"
            else:
                try:
                    same = conn.exec_driver_sql(
                        "SELECT COUNT(*) FROM mysql.user WHERE User = %s AND Host = %s "
                        "AND authentication_string = PASSWORD(%s)",
                        (user, host, password),
                    ).scalar()
                except sa.exc.SQLAlchemyError:  # a server without PASSWORD(): set it again
                    same = 0
                if not same:
                    changes["password"] = "changed"
            have = current_privileges(conn, user, host) if exists else {}
            if have != wanted:
                changes["privileges"] = {"old": _show(have), "new": _show(wanted)}
            if test or not changes:
                return {"user": user, "host": host, "role": role, "database": database, "changes": changes}
            if not exists:
                conn.exec_driver_sql("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
            elif "password" in changes:
                conn.exec_driver_sql("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
            if "privileges" in changes:
                if exists:
                    conn.exec_driver_sql("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@%s", (user, host))
                for (schema, table), privs in sorted(wanted.items()):
                    target = f"`{schema}`.*" if table == "*" else f"`{schema}`.`{table}`"
                    conn.exec_driver_sql(f"GRANT {', '.join(sorted(privs))} ON {target} TO %s@%s", (user, host))
    except sa.exc.SQLAlchemyError as exc:
        raise KioskStoreError(
            f"cannot set up the {role} account {user!r}@{host!r} on {database!r} through "
            f"{url.render_as_string(hide_password=True)}: {str(getattr(exc, 'orig', exc)).splitlines()[0][:300]}"
        ) from None
    finally:
        engine.dispose()
    return {"user": user, "host": host, "role": role, "database": database, "changes": changes}


def ensure_configured_account(opts, user, role, password_file, host="%", database=None, test=False):
    """
    :func:`ensure_account` with the settings of ``opts``: the administrative
    connection is ``kiosk:db_admin`` (or ``kiosk:db``), the database defaults
    to the one of ``kiosk:db``, and the password is read from
    ``password_file`` (so it never travels in a job's arguments).
    """
    settings = (opts or {}).get("kiosk") or {}
    try:
        with open(password_file, encoding="utf-8") as handle:
            password = handle.read().strip()
    except (OSError, TypeError) as exc:
        raise KioskInputError(
            f"password_file {password_file!r} cannot be read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    admin = settings.get("db_admin") or settings.get("db")
    if not admin:
        raise KioskInputError("kiosk:db_admin (or kiosk:db) is not set: nothing to create the account with")
    cachedir = (opts or {}).get("cachedir", "/tmp")
    admin_url = store.db_url({"cachedir": cachedir, "kiosk": {"db": admin}})
    if database is None and settings.get("db"):
        database = store.db_url({"cachedir": cachedir, "kiosk": {"db": settings["db"]}}).database
    try:
        return ensure_account(admin_url, user, password, role, host=host, database=database, test=test)
    except sa.exc.SQLAlchemyError as exc:
        raise KioskStoreError(
            f"{exc.__class__.__name__}: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}"
        ) from None


def _show(privileges):
    return {f"{schema}.{table}": sorted(privs) for (schema, table), privs in sorted(privileges.items())}
