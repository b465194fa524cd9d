"""
Kiosk releases as a state: hop 2 of a release rollout.

.. code-block:: yaml

    kiosk-release:
      kiosk_release.installed:
        - name: latest

``name`` is ``latest`` (the newest release staged on this minion's master, read
from ``salt://kiosk_releases/latest.json``) or a version; a version may come with
the ``md5`` and ``filename`` recorded on the master of masters, which is what
``salt-run kiosk_release.publish`` passes. The release file is fetched from
this kiosk's own syndic master (``salt://kiosk_releases/<version>/<file>``) with
its md5 checked while streaming, installed into
``<kiosk:release_dir>/<version>/`` and ``current`` is switched atomically. On an
md5 mismatch ``current`` stays where it was, the state fails naming both
md5s and ``kiosk.release`` reports the failed attempt.

Archives (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``) are
checked member by member before anything is unpacked: no absolute names or
``..``, symbolic and hard links only to places inside the release (resolved
over the archive's own members), no devices, FIFOs, setuid or setgid, at most
``kiosk:release_max_members`` members (20000) and ``kiosk:release_max_bytes``
bytes in all (1 GiB, the release file included). A refused archive fails the
state naming the member and why; nothing is left behind and ``current`` stays.
Reinstalling a version with other content installs into a fresh directory
(``<version>~<suffix>``) and removes the old one only after ``current`` has
moved.

Health gate: a release whose manifest ``kiosk-release.yaml`` (or whose
``health_cmd`` / ``health_url`` / ``health_timeout`` given at publish time)
names a health check or activation commands is kept only when the check passes
after ``current`` switched; otherwise ``current`` goes back to the previous
release and the state fails with ``result: False`` and a comment saying it was
rolled back and why (the check's output, capped). A gate that a power loss cut
short is finished first, at the next run. ``latest`` does not install again a
release (same version and md5) that this kiosk rolled back: a kiosk that fails
its check at boot does not retry it at every boot; name the version to retry.

Shipped as ``srv/salt/kiosk/release.sls``; kiosks run it at minion start with
``startup_states: sls`` and ``sls_list: [kiosk.release]``, so a kiosk that was
off during a publish upgrades when it starts.

Salt passes job data (``__pub_*`` keys) on to states run with ``state.single``
through a syndic; the states accept and ignore it.

Events fired (through the kiosk's master, forwarded up by the syndics):

``kiosk/release/rolled_back``
    ``{"version", "md5", "previous", "reason"}``: the release failed its
    health gate on this kiosk and the previous one is current again.
"""

try:
    from salt.exceptions import SaltException

    from salt_kiosk.node import release_install

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

__virtualname__ = "kiosk_release"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


def _fire(data, tag):
    __salt__["event.send"](tag, data)


def installed(name="latest", md5=None, filename=None, source=None, health=None, relay=None, **_job_data):
    """
    Ensure release ``name`` (a version or ``latest``) is the current release.

    name
        ``latest`` or a version such as ``1.4.0`` (quote versions like "1.10"
        in YAML).

    md5, filename
        The release's md5 and file name as recorded centrally; read from the
        release manifest staged on this minion's master when omitted.

    source
        Override the default ``salt://kiosk_releases/<version>/<filename>``.

    health
        The publish-time health settings ``{"cmd", "url", "timeout"}`` (any of
        them) overriding the manifest's; read from the staged release manifest
        when omitted.

    relay
        The address of the master (one of this kiosk's relays) to fetch the
        release from; default: the one this job came through. A rollout in
        waves sets it to keep each relay under ``per_relay`` fetches.

    CLI Example:

    .. code-block:: bash

        salt 'kiosk-*' state.single kiosk_release.installed latest
        salt kiosk-e1 state.single kiosk_release.installed 1.4.0 md5=0f343b0931126a20f133d67c2b018a3b filename=app.tar.gz
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    try:
        version = "latest" if str(name) == "latest" else release_install.check_version(name)
        if not __opts__.get("test"):
            # A gate cut short by a power loss is decided before anything else.
            release_install.finish_pending(__opts__, fire=_fire)
        if md5 is None or filename is None:
            manifest = release_install.manifest_from_master(__opts__, version)
            if manifest is None:
                if version == "latest":
                    ret["comment"] = "no release is staged on this minion's master yet"
                    return ret
                ret["result"] = False
                ret["comment"] = f"release {version} is not staged on this minion's master"
                return ret
            latest = version == "latest"
            version = manifest["version"]
            md5 = md5 or manifest["md5"]
            filename = filename or manifest["file"]
            if health is None:
                health = manifest.get("health")
        else:
            latest = False
        current = release_install.current(__opts__)
        if current["version"] == version and current["md5"] == md5:
            ret["comment"] = f"release {version} is already current"
            return ret
        last = current.get("last_attempt") or {}
        if latest and last.get("rolled_back") and last.get("version") == version and last.get("md5") == md5:
            ret["result"] = False
            ret["comment"] = (
                f"release {version} failed its health gate on this kiosk at {last.get('at')} and was rolled back; "
                f"not installed again for latest (name the version to retry): {last.get('error')}"
            )
            return ret
        if __opts__.get("test"):
            ret["result"] = None
            ret["comment"] = f"release {version} would be installed (now: {current['version']})"
            ret["changes"] = {"version": {"old": current["version"], "new": version}}
            return ret
        done = release_install.install(
            __opts__, version, md5, filename, source=source, health=health, fire=_fire, relay=relay
        )
    except SaltException as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    ret["changes"] = {"version": {"old": done["previous"], "new": version}}
    ret["comment"] = f"release {version} installed in {done['path']} (md5 {md5} verified)"
    if done.get("health") is not None:
        ret["comment"] += f"; health gate passed: {done['health'][-500:]}"
    return ret
