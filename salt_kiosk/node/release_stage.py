"""
Release staging on a relay (hop 1 of a release, relay side): fetch the release
file from the master of masters' one-time URL with
:func:`salt_kiosk.node.delivery.deliver` (md5 checked while streaming) into the
relay master's file roots, so the kiosks below read
``salt://kiosk_releases/...`` from their own master.

Layout on a relay: ``<kiosk:release_root>/kiosk_releases/<version>/<file>`` plus
``release.json`` next to it and ``kiosk_releases/latest.json``.

Configuration (relay minion config, ``kiosk:`` key):

``release_root``
    A ``file_roots`` directory of the relay's salt-master (default
    ``/srv/salt``).
"""

import logging
import os

from salt_kiosk import clock, files
from salt_kiosk.node import delivery, release_health
from salt_kiosk.node.release_install import STAGE_DIR, check_filename, check_version

log = logging.getLogger(__name__)


DEFAULT_RELEASE_ROOT = "/srv/salt"


def release_root(opts):
    return (opts.get("kiosk") or {}).get("release_root") or DEFAULT_RELEASE_ROOT


def stage_local(opts, version, url, md5, filename, latest=True, health=None):
    """
    On a relay: fetch the release from ``url`` into this syndic master's file
    root with its md5 checked, then publish its manifest (and ``latest.json``
    when it is the newest release). ``health``: the publish-time health
    settings, passed on to the kiosks in the manifest.
    """
    version = check_version(version)
    md5 = delivery.check_md5(md5)
    filename = check_filename(filename)
    health = release_health.check_settings(health) or None
    folder = os.path.join(release_root(opts), STAGE_DIR, version)
    result = delivery.deliver(
        url, os.path.join(folder, filename), md5, mode="0644", backup=False, makedirs=True, opts=opts
    )
    manifest = {"version": version, "file": filename, "md5": md5, "staged": clock.now_iso()}
    if health:
        manifest["health"] = health
    files.write_json(os.path.join(folder, "release.json"), manifest)
    if latest:
        files.write_json(os.path.join(release_root(opts), STAGE_DIR, "latest.json"), manifest)
    return {
        "version": version,
        "path": result["dest"],
        "md5": md5,
        "changed": result["changed"],
        "bytes": result["bytes"],
        "latest": bool(latest),
    }


def promote_local(opts, version):
    """
    On a relay: point ``latest.json`` at an already staged release (its
    ``release.json``, written when it was staged with the md5 recorded
    centrally), so kiosks starting up install it. Nothing is fetched again.
    """
    version = check_version(version)
    base = os.path.join(release_root(opts), STAGE_DIR)
    manifest = files.read_json(os.path.join(base, version, "release.json"))
    if manifest is None:
        raise delivery.KioskDeliveryError(f"release {version} is not staged on this relay ({base}/{version})")
    files.write_json(os.path.join(base, "latest.json"), manifest)
    return {"version": version, "latest": True}
