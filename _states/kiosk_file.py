"""
Verified file delivery as a state.

.. code-block:: yaml

    /etc/kiosk/app.conf:
      kiosk_file.delivered:
        - source: salt://kiosk/files/app.conf
        - md5: 0f343b0931126a20f133d67c2b018a3b
        - mode: "0644"

The file is streamed from ``source`` (``salt://``, ``http(s)://`` or a local
path) into a temporary file next to the destination with its md5 checked on
the way, and renamed into place only when the md5 matches; the replaced copy
is kept as ``<name>.kiosk-prev``. A destination already holding the md5 is
not fetched again and reports no changes. ``test=True`` reports what would
change and touches nothing.

Salt passes job data (``__pub_*`` keys) on to states run with ``state.single``
through a syndic; the states accept and ignore it.

Events fired: none.
"""

try:
    from salt.exceptions import SaltException

    from salt_kiosk.node import delivery

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

__virtualname__ = "kiosk_file"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


def delivered(name, source, md5, mode=None, user=None, backup=True, makedirs=False, **_job_data):
    """
    Ensure the file ``name`` holds the content of ``source`` with md5 ``md5``.

    name
        Absolute destination path.

    source
        ``salt://...``, ``http(s)://...`` or an absolute local path.

    md5
        Expected md5 (32 hex digits).

    mode
        Permission bits such as ``"0644"`` (0000-0777); setuid, setgid and
        sticky modes are refused (``result: False``, nothing written).

    user, backup, makedirs
        As for ``kiosk.deliver``.

    CLI Example:

    .. code-block:: bash

        salt kiosk-e1 state.single kiosk_file.delivered /etc/kiosk/app.conf source=salt://kiosk/files/app.conf md5=0f343b0931126a20f133d67c2b018a3b
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    try:
        if __opts__.get("test"):
            planned = delivery.plan(source, name, md5, mode=mode, user=user)
            ret["comment"] = planned["comment"]
            if planned["changed"]:
                ret["result"] = None
                ret["changes"] = planned["changes"]
            return ret
        done = delivery.deliver(
            source, name, md5, mode=mode, user=user, backup=bool(backup), makedirs=bool(makedirs), opts=__opts__
        )
    except SaltException as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    if done["changed"]:
        ret["changes"] = dict(done["changes"])
        if done["backup"]:
            ret["changes"]["backup"] = done["backup"]
        ret["comment"] = f"{name} updated from {source} (md5 {done['md5']} verified)"
    else:
        ret["comment"] = f"{name} already holds md5 {done['md5']}"
    return ret
