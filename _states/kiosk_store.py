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
    from salt.exceptions import SaltException

    from salt_kiosk import config
    from salt_kiosk.db import accounts, store

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

__virtualname__ = "kiosk_store"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


def schema_current(name="kiosk", **_job_data):
    """
    Ensure the kiosk database schema is at the version this salt-kiosk needs.

    CLI Example:

    .. code-block:: bash

        salt central state.single kiosk_store.schema_current kiosk
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    try:
        state = store.upgrade_schema(config.with_pillar(__opts__, __pillar__), test=bool(__opts__.get("test")))
    except SaltException as exc:
        ret["result"] = False
        ret["comment"] = f"kiosk database: {str(exc).splitlines()[0]}"
        return ret
    if state["old"] >= state["new"]:
        ret["comment"] = f"schema is at version {state['old']}"
        return ret
    ret["changes"] = {"version": {"old": state["old"], "new": state["new"]}}
    if __opts__.get("test"):
        ret["result"] = None
        ret["comment"] = f"schema would be upgraded from version {state['old']} to {state['new']}"
        return ret
    ret["changes"]["applied"] = state["applied"]
    ret["comment"] = f"schema upgraded to version {state['new']}"
    return ret


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
    try:
        result = accounts.ensure_configured_account(
            config.with_pillar(__opts__, __pillar__),
            name,
            role,
            password_file,
            host=host,
            database=database,
            test=bool(__opts__.get("test")),
        )
    except SaltException as exc:
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
