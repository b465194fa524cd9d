"""
The kiosk database as a state: create or upgrade its schema.

.. code-block:: yaml

    kiosk-schema:
      kiosk_store.schema_current:
        - name: kiosk

The database is ``kiosk:db`` from pillar (or the minion config; pillar wins),
as for ``kiosk_power.rule_present``. ``test=True`` reports the pending
migrations; an up-to-date schema reports no changes.

Least-privilege accounts (MySQL/MariaDB), created through an administrative
connection ``kiosk:db_admin`` (same forms as ``kiosk:db``; an account allowed
to create users and grant, e.g. root on the database host):

.. code-block:: yaml

    kiosk-db-relay-account:
      kiosk_store.account_present:
        - name: kiosk_relay
        - role: relay                    # owner | relay (see salt_kiosk.db.accounts)
        - host: "10.1.%"                 # where the relays connect from
        - password_file: /etc/salt/kiosk-db-relay.secret
        - require:
          - kiosk_store: kiosk-schema

The password is read from ``password_file`` on the minion applying the state
and never appears in the state's return.

Events fired: none.
"""

try:
    import sqlalchemy as sa
    from salt.exceptions import SaltException

    from salt_kiosk.db import migrations
    from salt_kiosk.db import accounts
    from salt_kiosk.db import store
    from salt_kiosk.errors import KioskInputError

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

__virtualname__ = "kiosk_store"


def __virtual__():
    if not HAS_LIB:
        return (False, f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk")
    return __virtualname__


def schema_current(name="kiosk", **_job_data):
    """
    Ensure the kiosk database schema is at the version this salt-kiosk needs.

    CLI Example:

    .. code-block:: bash

        salt central state.single kiosk_store.schema_current kiosk
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    opts = dict(__opts__)
    settings = dict(__opts__.get("kiosk") or {})
    pillar_kiosk = __pillar__.get("kiosk")
    if isinstance(pillar_kiosk, dict) and pillar_kiosk.get("db"):
        settings["db"] = pillar_kiosk["db"]
    opts["kiosk"] = settings
    try:
        engine = store.make_engine(store.db_url(opts))
        try:
            with engine.connect() as conn:
                have = migrations.current_version(conn)
            if have >= migrations.SCHEMA_VERSION:
                ret["comment"] = f"schema is at version {have}"
                return ret
            if __opts__.get("test"):
                ret["result"] = None
                ret["comment"] = f"schema would be upgraded from version {have} to {migrations.SCHEMA_VERSION}"
                ret["changes"] = {"version": {"old": have, "new": migrations.SCHEMA_VERSION}}
                return ret
            applied = migrations.upgrade(engine)
        finally:
            engine.dispose()
    except (SaltException, sa.exc.SQLAlchemyError) as exc:
        ret["result"] = False
        ret["comment"] = f"kiosk database: {str(exc).splitlines()[0]}"
        return ret
    ret["changes"] = {"version": {"old": have, "new": migrations.SCHEMA_VERSION}, "applied": applied}
    ret["comment"] = f"schema upgraded to version {migrations.SCHEMA_VERSION}"
    return ret


def _kiosk_settings():
    settings = dict(__opts__.get("kiosk") or {})
    pillar_kiosk = __pillar__.get("kiosk")
    if isinstance(pillar_kiosk, dict):
        for key in ("db", "db_admin"):
            if pillar_kiosk.get(key):
                settings[key] = pillar_kiosk[key]
    return settings


def account_present(name, role, password_file, host="%", database=None, **_job_data):
    """
    Ensure the kiosk database account ``name``@``host`` exists with exactly
    the privileges of ``role`` (``owner`` or ``relay``) and the password held
    in ``password_file``.

    CLI Example:

    .. code-block:: bash

        salt central state.single kiosk_store.account_present kiosk_relay role=relay password_file=/etc/salt/kiosk-db-relay.secret host='10.1.%'
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    settings = _kiosk_settings()
    try:
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
        admin_url = store.db_url({"cachedir": __opts__.get("cachedir", "/tmp"), "kiosk": {"db": admin}})
        if database is None and settings.get("db"):
            database = store.db_url({"cachedir": __opts__.get("cachedir", "/tmp"), "kiosk": {"db": settings["db"]}}).database
        result = accounts.ensure_account(admin_url, name, password, role, host=host, database=database,
                                         test=bool(__opts__.get("test")))
    except (SaltException, sa.exc.SQLAlchemyError) as exc:
        ret["result"] = False
        ret["comment"] = f"kiosk database account {name}: {str(exc).splitlines()[0]}"
        return ret
    where = f"{name}@{host} ({role} on {result['database']})"
    if not result["changes"]:
        ret["comment"] = f"account {where} is as configured"
        return ret
    ret["changes"] = result["changes"]
    if __opts__.get("test"):
        ret["result"] = None
        ret["comment"] = f"account {where} would be updated: {', '.join(sorted(result['changes']))}"
        return ret
    ret["comment"] = f"account {where} updated: {', '.join(sorted(result['changes']))}"
    return ret
