"""
Kiosk inventory on the master of masters.

The master cannot see the grains of minions behind syndics, so the inventory
(code, minion id, campus, groups, IP, MAC, VNC port) lives in the kiosk database.

Configuration (master config, ``kiosk:`` key; see :mod:`salt_kiosk.config`):

.. code-block:: yaml

    kiosk:
      db: mysql+pymysql://kiosk:SECRET@db.example/kiosk   # default: SQLite in cachedir
      campuses:
        east: {timezone: Asia/Shanghai, broadcast: 10.1.255.255, relays: [relay-e1]}
      import_dirs: [/srv/kiosk/inventory]   # where import_csv may read files (default: none)

``kiosk:import_dirs``
    Directories ``import_csv`` may read CSV files from (a path or a list of
    absolute paths; default none). A path is resolved with ``realpath`` first,
    so a symlink or ``..`` leading out of them is refused, before the file is
    opened. ``salt://`` URLs (the master's own file server) are always
    accepted. Errors never echo a line of the file, only the offending field,
    escaped and capped.

``refresh`` validates every grain field it stores (see
:mod:`salt_kiosk.assets`): a malformed value is reported under ``conflicts``
and not stored.

Events fired on the master bus:

``kiosk/inventory/changed``
    After an import that added, updated or removed kiosks:
    ``{"added": n, "updated": n, "removed": n}``. The scheduler engine re-plans on it.
"""

import logging

try:
    from salt_kiosk import assets, inventory, overview
    from salt_kiosk import events as kevents
    from salt_kiosk import versions as kversions
    from salt_kiosk.db import store
    from salt_kiosk.errors import refusals_exit_nonzero

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

    def refusals_exit_nonzero(func):  # __virtual__ refuses the module; the name must still exist
        return func


log = logging.getLogger(__name__)

__virtualname__ = "kiosk_inventory"
__func_alias__ = {"list_": "list"}


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


@refusals_exit_nonzero
def import_csv(path, skip_bad=False, replace=False):
    """
    Import kiosks from a CSV file on the master.

    The header is ``code,minion_id,campus,groups,ip,mac,vnc_port`` (groups
    separated by ``;``). Every row is validated first; a file with a bad row
    stores nothing and the error lists each bad row with its line number and
    field (the value escaped and capped; never a whole line). Kiosks are
    upserted by code.

    path
        CSV file on the master inside one of the ``kiosk:import_dirs``
        directories (master config), or a ``salt://`` URL served by the
        master's file server (``salt://kiosk/inventory.csv?saltenv=base``).

    skip_bad
        Import the good rows of a file that has bad ones (the bad rows are
        returned under ``rejected``).

    replace
        Remove kiosks that are not in the file.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_inventory.import_csv /srv/kiosk/inventory/fleet.csv
        salt-run kiosk_inventory.import_csv /srv/kiosk/inventory/fleet.csv skip_bad=True
        salt-run kiosk_inventory.import_csv salt://kiosk/inventory.csv
    """
    kstore = store.open_store(__opts__)
    summary = inventory.import_source(__opts__, kstore, path, skip_bad=bool(skip_bad), replace=bool(replace))
    if summary["added"] or summary["updated"] or summary["removed"]:
        data = {key: len(summary[key]) for key in ("added", "updated", "removed")}
        kevents.fire_master(__opts__, data, "kiosk/inventory/changed")
    return summary


@refusals_exit_nonzero
def list_(target="*"):
    """
    List kiosks in the inventory.

    target
        ``*`` (default), ``campus:NAME``, ``group:NAME`` or ``id:GLOB``.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_inventory.list
        salt-run kiosk_inventory.list campus:east
        salt-run kiosk_inventory.list 'id:kiosk-e*'
    """
    return inventory.list_kiosks(store.open_store(__opts__), target)


@refusals_exit_nonzero
def fleet(target="*", search=None):
    """
    The fleet at a glance: each campus with its relays and its kiosks, each
    kiosk with its inventory fields, its last observed power state
    (``power``: ``on``, ``off`` or ``unknown`` from the newest verification
    sweep that looked at it, None before any), the state that sweep expected,
    its release (``release``, ``release_ok``) and its open alert (``alert``:
    the final sweep of a power event found it wrong and no later sweep found
    it right). ``counts`` sums the kiosks per state and the open alerts.

    target
        ``*`` (default), ``campus:NAME``, ``group:NAME`` or ``id:GLOB``.

    search
        Only the kiosks whose code contains this text (case-insensitive).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_inventory.fleet
        salt-run kiosk_inventory.fleet campus:east
        salt-run kiosk_inventory.fleet group:pay search=E0
    """
    return overview.fleet(store.open_store(__opts__), target, search=search)


@refusals_exit_nonzero
def campuses():
    """
    List the campuses known to the kiosk database (mirrored from ``kiosk:campuses``).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_inventory.campuses
    """
    return store.open_store(__opts__).campus_rows()


@refusals_exit_nonzero
def refresh(not_seen_days=7, timeout=30):
    """
    Collect the ``kiosk`` grain from every minion through the syndic tree,
    upsert the assets, write one history row per changed field (old value, new
    value, when), correct the inventory's IP/MAC, and report identity changes
    (a kiosk reporting another code than the inventory's: reported, never
    duplicated), code conflicts, and minions not seen for ``not_seen_days``.

    A grain is what its minion says: every field stored (ip, mac, code,
    campus, hostname, release, role, serial, vendor, model, cpu, counts) is
    checked first. A malformed one is reported under ``conflicts`` (minion,
    field, the value escaped and capped) and stored nowhere: not in the asset
    row, the inventory or the history.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_inventory.refresh
        salt-run kiosk_inventory.refresh not_seen_days=3
    """
    return assets.refresh(__opts__, store.open_store(__opts__), not_seen_days=not_seen_days, timeout=int(timeout))


@refusals_exit_nonzero
def history(kiosk=None, limit=100):
    """
    Change history of a kiosk (inventory code or minion id), newest first;
    every kiosk's when ``kiosk`` is omitted.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_inventory.history E01
        salt-run kiosk_inventory.history kiosk-e1
    """
    kstore = store.open_store(__opts__)
    if kiosk is None:
        return assets.history(kstore, limit=limit)
    known = [k for k in inventory.list_kiosks(kstore, "*") if k["minion_id"] == kiosk]
    if known:
        return assets.history(kstore, minion=kiosk, limit=limit)
    return assets.history(kstore, code=str(kiosk), limit=limit)


@refusals_exit_nonzero
def asset(kiosk):
    """
    What the last inventory refresh stored for one node (minion id): its
    checked fields (code, role, campus, hostname, ip, mac, release), the
    checked grain as ``facts``, ``first_seen`` and ``last_seen``; None when no
    refresh has seen it. The console's kiosk page shows it.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_inventory.asset kiosk-e1
    """
    return assets.asset(store.open_store(__opts__), kiosk)


@refusals_exit_nonzero
def versions(target="*", timeout=30):
    """
    Ask every node (kiosks, relays, the central minion) which salt-kiosk it
    runs: the loader modules' version (synced ``_modules`` take precedence
    over the pip-installed ones) and the pip-installed library's. Returns
    ``{"nodes": {minion: {"modules": ..., "library": ...}}, "skew": [nodes
    whose modules and library differ], "unknown": [nodes whose modules are too
    old to tell their own version], "failed": {node: reason}}`` (a node
    without the library answers that ``kiosk.version`` is not available).
    Nodes that do not answer within ``timeout`` seconds are not listed.

    target
        A glob on minion ids (default ``*``), published through the syndic tree.

    timeout
        Seconds to wait for the answers (1-3600, default 30).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_inventory.versions
        salt-run kiosk_inventory.versions 'kiosk-e*' timeout=10
    """
    return kversions.collect(__opts__, target=target, timeout=timeout)
