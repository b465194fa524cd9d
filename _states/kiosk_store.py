"""
The kiosk database as a state: create or upgrade its schema.

.. code-block:: yaml

    kiosk-schema:
      kiosk_store.schema_current:
        - name: kiosk

The database is ``kiosk:db`` from pillar (or the minion config; pillar wins),
as for ``kiosk_power.rule_present``. ``test=True`` reports the pending
migrations; an up-to-date schema reports no changes.

Events fired: none.
"""

try:
    import sqlalchemy as sa
    from salt.exceptions import SaltException

    from salt_kiosk import config as kconfig
    from salt_kiosk import store

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
        engine = store.make_engine(kconfig.db_url(opts))
        try:
            with engine.connect() as conn:
                have = store.current_version(conn)
            if have >= store.SCHEMA_VERSION:
                ret["comment"] = f"schema is at version {have}"
                return ret
            if __opts__.get("test"):
                ret["result"] = None
                ret["comment"] = f"schema would be upgraded from version {have} to {store.SCHEMA_VERSION}"
                ret["changes"] = {"version": {"old": have, "new": store.SCHEMA_VERSION}}
                return ret
            applied = store.upgrade(engine)
        finally:
            engine.dispose()
    except (SaltException, sa.exc.SQLAlchemyError) as exc:
        ret["result"] = False
        ret["comment"] = f"kiosk database: {str(exc).splitlines()[0]}"
        return ret
    ret["changes"] = {"version": {"old": have, "new": store.SCHEMA_VERSION}, "applied": applied}
    ret["comment"] = f"schema upgraded to version {store.SCHEMA_VERSION}"
    return ret
