"""
Versioned releases: publish on the master of masters, stage on every relay
(hop 1), install on kiosks (hop 2), roll back with a new version, report.

Where things live:

- master of masters: ``<kiosk:release_store>/<version>/<file>`` (default
  ``<cachedir>/kiosk/releases``) and one row per release in ``kiosk_releases``;
- relays (syndic nodes): ``<kiosk:release_root>/kiosk_releases/<version>/<file>``
  plus ``release.json`` next to it and ``kiosk_releases/latest.json``; the
  release root is a ``file_roots`` directory of the relay's salt-master, so the
  kiosks below read ``salt://kiosk_releases/...`` from their own master;
- kiosks: ``<kiosk:release_dir>/<version>/`` (default ``/opt/kiosk/releases``)
  with the release file (archives are unpacked next to it) and a ``current``
  symlink switched atomically with a rename.

Hop 1 runs over HTTP: while ``publish`` runs, the master of masters serves the
one release file under a random path and each relay's minion fetches it with
:func:`salt_kiosk.delivery.deliver` (md5 checked while streaming). Hop 2 uses the
same function with a ``salt://`` source and the md5 recorded centrally.
"""

import contextlib
import datetime
import functools
import hashlib
import http.server
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tarfile
import tempfile
import threading

import sqlalchemy as sa
from packaging.version import InvalidVersion, Version

from salt_kiosk import delivery, fanout
from salt_kiosk import power as kpower
from salt_kiosk import store as kstore_mod
from salt_kiosk.config import campuses as campus_config
from salt_kiosk.errors import KioskInputError
from salt_kiosk.files import fsync_dir, md5_file, write_atomically

log = logging.getLogger(__name__)

DEFAULT_RELEASE_DIR = "/opt/kiosk/releases"
DEFAULT_RELEASE_ROOT = "/srv/salt"
DEFAULT_KEEP = 3
STAGE_DIR = "kiosk_releases"
META_NAME = ".kiosk-release.json"
ATTEMPT_NAME = ".kiosk-last-attempt.json"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_VERSION_CHARS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,63}$")


# --- values ------------------------------------------------------------------


def check_version(value):
    """
    Return the normalised version string (PEP 440, e.g. ``1.4.0``, ``2026.11.2``,
    ``1.5rc1``); raise naming the value otherwise.
    """
    text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _VERSION_CHARS.match(text):
        raise KioskInputError(
            f"version {value!r} is not a valid version string: expected dotted numbers such as 1.4.0 (PEP 440)"
        )
    try:
        return str(Version(text))
    except InvalidVersion as exc:
        raise KioskInputError(
            f"version {value!r} is not a valid version string: expected dotted numbers such as 1.4.0 (PEP 440)"
        ) from exc


def version_key(version):
    return Version(version)


RESERVED_NAMES = ("release.json", "latest.json", "current")


def check_filename(name):
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise KioskInputError(f"release file name {name!r} is not a plain file name")
    if name in RESERVED_NAMES:
        raise KioskInputError(f"release file name {name!r} is reserved (used for {', '.join(RESERVED_NAMES)}); rename the file")
    return name


def next_version(version):
    """The version after ``version`` (last release component + 1): 1.4.0 -> 1.4.1."""
    release = list(Version(version).release)
    release[-1] += 1
    return ".".join(str(part) for part in release)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _write_json(path, data):
    write_atomically(path, json.dumps(data, sort_keys=True))


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None


# --- master of masters: the release catalogue -----------------------------------


def release_store(opts):
    kiosk = opts.get("kiosk") or {}
    return kiosk.get("release_store") or os.path.join(opts.get("cachedir", "/var/cache/salt/master"), "kiosk", "releases")


def _row(row):
    return {
        "version": row.version,
        "file": row.filename,
        "md5": row.md5,
        "size": row.size,
        "source": row.source,
        "rollback_of": row.rollback_of,
        "published": row.created_at.isoformat() + "Z",
    }


def list_releases(kstore):
    """Every release, oldest first (publishing order)."""
    with kstore.connect() as conn:
        rows = conn.execute(sa.select(kstore_mod.releases).order_by(kstore_mod.releases.c.seq)).all()
    return [_row(row) for row in rows]


def get_release(kstore, version):
    """The release equal to ``version`` (PEP 440: ``1.0`` equals ``1.0.0``), or None."""
    wanted = version_key(version)
    for release in list_releases(kstore):
        if version_key(release["version"]) == wanted:
            return release
    return None


def latest_release(kstore):
    """The highest version published (rollbacks are new, higher versions)."""
    releases = list_releases(kstore)
    if not releases:
        return None
    return max(releases, key=lambda rel: version_key(rel["version"]))


class _OneFileHandler(http.server.BaseHTTPRequestHandler):
    def __init__(self, *args, routes=None, **kwargs):
        self.routes = routes
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.routes.get(self.path)
        if path is None:
            self.send_error(404)
            return
        size = os.path.getsize(path)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(path, "rb") as handle:
            shutil.copyfileobj(handle, self.wfile, 1024 * 1024)

    def log_message(self, fmt, *args):
        log.debug("release server: " + fmt, *args)


@contextlib.contextmanager
def serve_file(opts, path):
    """
    Serve ``path`` over HTTP under a random URL while the block runs; yield the
    URL. Bind address: ``kiosk:release_http:host`` (default: the master's
    ``interface``), port ``kiosk:release_http:port`` (default 0: any free one),
    advertised host ``kiosk:release_http:advertise`` (default: the bind address,
    or this host's FQDN when binding to all addresses).
    """
    conf = (opts.get("kiosk") or {}).get("release_http") or {}
    host = conf.get("host") or opts.get("interface") or "0.0.0.0"
    port = int(conf.get("port") or 0)
    advertise = conf.get("advertise") or (socket.getfqdn() if host in ("0.0.0.0", "::") else host)
    route = f"/{secrets.token_urlsafe(24)}/{os.path.basename(path)}"
    handler = functools.partial(_OneFileHandler, routes={route: path})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, name="kiosk-release-http", daemon=True)
    thread.start()
    try:
        yield f"http://{advertise}:{server.server_address[1]}{route}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def all_relays(opts):
    relays = []
    for spec in campus_config(opts).values():
        for relay in spec["relays"]:
            if relay not in relays:
                relays.append(relay)
    return relays


def _record_stages(kstore, version, outcome):
    table = kstore_mod.release_stages
    with kstore.begin() as conn:
        conn.execute(table.delete().where(table.c.version == version))
        rows = [
            {"version": version, "relay": relay, "ok": ok, "error": error, "staged_at": kstore_mod.utcnow()}
            for relay, (ok, error) in outcome.items()
        ]
        if rows:
            conn.execute(table.insert(), rows)


def stage(opts, kstore, release, relays=None, timeout=300, latest=False):
    """
    Hop 1: every relay's minion fetches the release from this master over HTTP
    and checks its md5. Return ``{"staged": [...], "failed": {relay: reason},
    "silent": [...]}`` and record it per relay.
    """
    relays = list(relays if relays is not None else all_relays(opts))
    if not relays:
        raise KioskInputError("no relays are configured under kiosk:campuses, so there is nowhere to stage")
    path = os.path.join(release_store(opts), release["version"], release["file"])
    newest = latest_release(kstore)
    latest = bool(latest) and newest is not None and newest["version"] == release["version"]
    with serve_file(opts, path) as url:
        job = {
            "tgt": relays,
            "fun": "kiosk.stage_release",
            "kwarg": {
                "version": release["version"],
                "url": url,
                "md5": release["md5"],
                "filename": release["file"],
                "latest": latest,
            },
        }
        answers = fanout.run_jobs(opts, {"stage": job}, timeout)["stage"]
    result = {"staged": [], "failed": {}, "silent": []}
    outcome = {}
    for relay in relays:
        answer = answers.get(relay)
        if answer is None:
            result["silent"].append(relay)
            outcome[relay] = (False, "no answer (relay down or unreachable)")
        elif fanout.failed(answer) or not isinstance(answer["ret"], dict):
            reason = str(answer["ret"])
            result["failed"][relay] = reason
            outcome[relay] = (False, reason)
        else:
            result["staged"].append(relay)
            outcome[relay] = (True, None)
    _record_stages(kstore, release["version"], outcome)
    return result


def _refuse_other_content(existing, version, md5):
    if existing and existing["md5"] != md5:
        raise KioskInputError(
            f"version {version} is already published with md5 {existing['md5']} ({existing['file']}); "
            f"refusing different content (md5 {md5}): publish it under a new version"
        )


def _stream_to_scratch(opts, store_dir, source):
    """Copy ``source`` into a scratch file of the release store; return (path, md5)."""
    fd, scratch = tempfile.mkstemp(prefix=".incoming-", dir=store_dir)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as handle:
            for chunk in delivery.open_source(source, opts=opts):
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch)
        raise
    return scratch, digest.hexdigest()


def _record(kstore, release_row):
    """Insert the release row; return the row that exists afterwards (ours or a concurrent one)."""
    table = kstore_mod.releases
    try:
        with kstore.begin() as conn:
            seq = (conn.execute(sa.select(sa.func.max(table.c.seq))).scalar() or 0) + 1
            conn.execute(table.insert().values(seq=seq, created_at=kstore_mod.utcnow(), **release_row))
    except sa.exc.IntegrityError:
        pass  # published concurrently: compare with what is there
    return get_release(kstore, release_row["version"])


def publish(opts, kstore, version, source, md5=None, rollback_of=None, stage_timeout=300, stager=None,
            promote=True):
    """
    Record release ``version`` from ``source`` (a path on this master or an
    http(s) URL), copy it into the release store with its md5 checked, and stage
    it on every relay; with ``promote`` (and when it is the newest version) the
    relays' ``latest.json`` points at it, so kiosks starting up install it.
    Publishing an existing version with different content is refused; with the
    same content it is staged again (idempotent).

    The content is streamed into a scratch file first and moves into the
    version's folder only after the database row agrees with its md5, so two
    publishers racing on one version cannot leave the store and the catalogue
    disagreeing.
    """
    version = check_version(version)
    if md5 is not None:
        md5 = delivery.check_md5(md5)
    if not all_relays(opts):
        raise KioskInputError("no relays are configured under kiosk:campuses, so there is nowhere to stage")
    kind = delivery.source_kind(source)
    if kind == "salt":
        raise KioskInputError(
            f"source {source!r}: publish takes a path on the master of masters or an http(s) URL, not salt://"
        )
    if kind == "local":
        path = source[len("file://"):] if source.startswith("file://") else source
        if not os.path.isfile(path):
            raise KioskInputError(f"source {source!r} does not exist or is not a regular file on this master")
    existing = get_release(kstore, version)
    if existing:
        version = existing["version"]
        filename = existing["file"]
        if md5 is not None:
            _refuse_other_content(existing, version, md5)
    else:
        filename = check_filename(os.path.basename(source.split("?", 1)[0].rstrip("/")))
    store_dir = release_store(opts)
    os.makedirs(store_dir, exist_ok=True)
    scratch, actual = _stream_to_scratch(opts, store_dir, source)
    try:
        if md5 is not None and actual != md5:
            raise delivery.Md5Mismatch(source, md5, actual)
        md5 = actual
        _refuse_other_content(existing, version, md5)
        row = existing or _record(kstore, {
            "version": version, "filename": filename, "md5": md5, "size": os.path.getsize(scratch),
            "source": source, "rollback_of": rollback_of,
        })
        _refuse_other_content(row, version, md5)
        dest = os.path.join(store_dir, version, row["file"])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not (os.path.isfile(dest) and md5_file(dest) == md5):
            os.chmod(scratch, 0o644)
            os.replace(scratch, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch)
    release = get_release(kstore, version)
    release["new"] = existing is None
    release["staging"] = (stager or stage)(opts, kstore, release, timeout=stage_timeout, latest=promote)
    return release


def rollback(opts, kstore, to=None, version=None, stage_timeout=300, stager=None, promote=True):
    """
    Publish the content of release ``to`` (default: the one published before
    the latest) as a NEW version (default: the latest with its last number + 1).
    """
    releases = list_releases(kstore)
    latest = latest_release(kstore)
    if latest is None:
        raise KioskInputError("no release has been published yet, so there is nothing to roll back to")
    if to is None:
        earlier = [rel for rel in releases if rel["version"] != latest["version"] and rel["md5"] != latest["md5"]]
        if not earlier:
            raise KioskInputError(f"only {latest['version']} has been published: there is no previous release")
        target = earlier[-1]
    else:
        wanted = check_version(to)
        target = get_release(kstore, wanted)
        if target is None:
            known = ", ".join(rel["version"] for rel in releases)
            raise KioskInputError(f"release {to!r} is unknown: published versions are {known}")
    new = check_version(version) if version is not None else next_version(latest["version"])
    if version_key(new) <= version_key(latest["version"]):
        raise KioskInputError(
            f"rollback version {new} must be higher than the latest release {latest['version']}, "
            "so that kiosks treat it as an upgrade"
        )
    if get_release(kstore, new):
        raise KioskInputError(f"version {new} is already published; pass another version=")
    path = os.path.join(release_store(opts), target["version"], target["file"])
    release = publish(opts, kstore, new, path, md5=target["md5"], rollback_of=target["version"],
                      stage_timeout=stage_timeout, stager=stager, promote=promote)
    return release


# --- rollout and status ---------------------------------------------------------


def _state_outcome(ret):
    """(ok, version, error) from a ``state.single kiosk_release.installed`` return."""
    if isinstance(ret, dict) and ret:
        chunk = next(iter(ret.values()))
        if isinstance(chunk, dict) and "result" in chunk:
            return bool(chunk["result"]), chunk.get("comment")
    if isinstance(ret, list):
        return False, "; ".join(str(item) for item in ret)
    return False, str(ret)


def record_kiosk(kstore, minion_id, **values):
    table = kstore_mod.release_kiosks
    values["seen_at"] = kstore_mod.utcnow()
    with kstore.begin() as conn:
        updated = conn.execute(table.update().where(table.c.minion_id == minion_id).values(**values)).rowcount
        if not updated:
            conn.execute(table.insert().values(minion_id=minion_id, **values))


def rollout(opts, kstore, release, target="*", timeout=300):
    """
    Hop 2: apply ``kiosk_release.installed`` for ``release`` on the kiosks of
    ``target`` (each fetches from its own syndic master and checks the md5).
    Return ``{"installed": [...], "unchanged": [...], "failed": {kiosk: reason},
    "absent": [...]}``.
    """
    kiosks = kpower.resolve_kiosks(kstore, target)
    promoted = None
    newest = latest_release(kstore)
    if target == "*" and newest and newest["version"] == release["version"]:
        promoted = promote(opts, release["version"], timeout=timeout)
    by_campus = {}
    for kiosk in kiosks:
        by_campus.setdefault(kiosk["campus"], []).append(kiosk["minion_id"])
    jobs = {
        campus: {
            "tgt": minions,
            "fun": "state.single",
            "arg": ["kiosk_release.installed", release["version"]],
            "kwarg": {"md5": release["md5"], "filename": release["file"]},
        }
        for campus, minions in by_campus.items()
    }
    answers = fanout.run_jobs(opts, jobs, timeout)
    result = {"version": release["version"], "installed": [], "unchanged": [], "failed": {}, "absent": []}
    if promoted is not None:
        result["promoted_on"] = promoted
    for campus, minions in by_campus.items():
        for minion in minions:
            answer = answers.get(campus, {}).get(minion)
            if answer is None:
                result["absent"].append(minion)
                continue
            ok, comment = _state_outcome(answer["ret"])
            chunk = next(iter(answer["ret"].values())) if isinstance(answer["ret"], dict) and answer["ret"] else {}
            if ok:
                changed = bool(isinstance(chunk, dict) and chunk.get("changes"))
                result["installed" if changed else "unchanged"].append(minion)
                record_kiosk(kstore, minion, version=release["version"], md5=release["md5"],
                             attempted=release["version"], ok=True, error=None)
            else:
                result["failed"][minion] = comment
                record_kiosk(kstore, minion, attempted=release["version"], ok=False, error=comment)
    return result


def status(opts, kstore, target="*", timeout=30):
    """
    Fleet view: ask every kiosk of ``target`` for its release (``kiosk.release``)
    and report kiosks per version, the ones behind the latest release, failures
    with their reason and the kiosks that did not answer (with their last known
    version).
    """
    kiosks = kpower.resolve_kiosks(kstore, target)
    latest = latest_release(kstore)
    jobs = {"release": {"tgt": [k["minion_id"] for k in kiosks], "fun": "kiosk.release"}}
    answers = fanout.run_jobs(opts, jobs, timeout)["release"]
    table = kstore_mod.release_kiosks
    with kstore.connect() as conn:
        known = {row.minion_id: row for row in conn.execute(sa.select(table)).all()}
    report = {
        "latest": latest["version"] if latest else None,
        "versions": {},
        "behind": [],
        "failures": {},
        "unreachable": {},
        "stages": {},
    }
    for kiosk in kiosks:
        minion = kiosk["minion_id"]
        answer = answers.get(minion)
        if answer is None or fanout.failed(answer) or not isinstance(answer["ret"], dict):
            row = known.get(minion)
            report["unreachable"][minion] = {"last_known_version": row.version if row else None}
            current = row.version if row else None
        else:
            info = answer["ret"]
            current = info.get("version")
            attempt = info.get("last_attempt") or {}
            failed = attempt.get("ok") is False
            if failed:
                report["failures"][minion] = {"version": attempt.get("version"), "reason": attempt.get("error")}
            record_kiosk(kstore, minion, version=current, md5=info.get("md5"), attempted=attempt.get("version"),
                         ok=attempt.get("ok"), error=attempt.get("error") if failed else None)
        report["versions"].setdefault(current or "none", []).append(minion)
        if latest and (current is None or version_key(current) < version_key(latest["version"])):
            report["behind"].append(minion)
    if latest:
        with kstore.connect() as conn:
            rows = conn.execute(
                sa.select(kstore_mod.release_stages).where(kstore_mod.release_stages.c.version == latest["version"])
            ).all()
        report["stages"] = {row.relay: ("staged" if row.ok else row.error) for row in rows}
    return report


# --- relays: hop 1 --------------------------------------------------------------


def release_root(opts):
    return (opts.get("kiosk") or {}).get("release_root") or DEFAULT_RELEASE_ROOT


def stage_local(opts, version, url, md5, filename, latest=True):
    """
    On a relay: fetch the release from ``url`` into this syndic master's file
    root with its md5 checked, then publish its manifest (and ``latest.json``
    when it is the newest release).
    """
    version = check_version(version)
    md5 = delivery.check_md5(md5)
    filename = check_filename(filename)
    folder = os.path.join(release_root(opts), STAGE_DIR, version)
    result = delivery.deliver(url, os.path.join(folder, filename), md5, mode="0644", backup=False, makedirs=True, opts=opts)
    manifest = {"version": version, "file": filename, "md5": md5, "staged": _now()}
    _write_json(os.path.join(folder, "release.json"), manifest)
    if latest:
        _write_json(os.path.join(release_root(opts), STAGE_DIR, "latest.json"), manifest)
    return {"version": version, "path": result["dest"], "md5": md5, "changed": result["changed"],
            "bytes": result["bytes"], "latest": bool(latest)}


def promote_local(opts, version):
    """
    On a relay: point ``latest.json`` at an already staged release (its
    ``release.json``, written when it was staged with the md5 recorded
    centrally), so kiosks starting up install it. Nothing is fetched again.
    """
    version = check_version(version)
    base = os.path.join(release_root(opts), STAGE_DIR)
    manifest = _read_json(os.path.join(base, version, "release.json"))
    if manifest is None:
        raise delivery.KioskDeliveryError(f"release {version} is not staged on this relay ({base}/{version})")
    _write_json(os.path.join(base, "latest.json"), manifest)
    return {"version": version, "latest": True}


def promote(opts, version, timeout=60):
    """Point every relay's ``latest.json`` at ``version``; return the relays that did."""
    relays = all_relays(opts)
    answers = fanout.run_jobs(opts, {"promote": {"tgt": relays, "fun": "kiosk.promote_release",
                                                 "arg": [version]}}, timeout)["promote"]
    done = sorted(r for r, a in answers.items() if not fanout.failed(a) and isinstance(a["ret"], dict))
    if len(done) < len(relays):
        log.warning("release %s: latest.json not updated on %s", version, sorted(set(relays) - set(done)))
    return done


# --- kiosks: hop 2 --------------------------------------------------------------


def release_dir(opts):
    return (opts.get("kiosk") or {}).get("release_dir") or DEFAULT_RELEASE_DIR


def current(opts):
    """
    The installed release on this kiosk: ``{"version", "md5", "file", "path",
    "installed", "last_attempt"}`` (``version`` None when nothing is installed).
    """
    base = release_dir(opts)
    link = os.path.join(base, "current")
    info = {"version": None, "md5": None, "file": None, "path": None, "installed": None}
    if os.path.islink(link):
        target = os.path.realpath(link)
        meta = _read_json(os.path.join(target, META_NAME)) or {}
        info.update(
            version=meta.get("version"), md5=meta.get("md5"), file=meta.get("file"),
            path=target, installed=meta.get("installed"),
        )
    info["last_attempt"] = _read_json(os.path.join(base, ATTEMPT_NAME))
    return info


def manifest_from_master(opts, version="latest"):
    """Read ``latest.json`` (or a version's ``release.json``) from this minion's master."""
    name = "latest.json" if version == "latest" else f"{check_version(version)}/release.json"
    try:
        raw = b"".join(delivery.open_source(f"salt://{STAGE_DIR}/{name}", opts=opts))
    except delivery.KioskDeliveryError:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise delivery.KioskDeliveryError(f"salt://{STAGE_DIR}/{name} is not valid JSON: {exc}") from exc


def _record_attempt(opts, version, ok, error=None):
    base = release_dir(opts)
    os.makedirs(base, exist_ok=True)
    _write_json(os.path.join(base, ATTEMPT_NAME), {"version": version, "ok": ok, "error": error, "at": _now()})


def _switch_current(base, version):
    tmp = os.path.join(base, f".current.{secrets.token_hex(4)}")
    os.symlink(version, tmp)
    os.replace(tmp, os.path.join(base, "current"))
    fsync_dir(base)


def install(opts, version, md5, filename, source=None):
    """
    Install ``version`` on this kiosk: fetch ``source`` (default
    ``salt://kiosk_releases/<version>/<filename>`` from this minion's master)
    into a new directory with the md5 checked, unpack archives, then switch the
    ``current`` symlink atomically. A failure leaves ``current`` where it was
    and is recorded as the last attempt (``kiosk.release`` reports it).
    """
    version = check_version(version)
    md5 = delivery.check_md5(md5)
    filename = check_filename(filename)
    source = source or f"salt://{STAGE_DIR}/{version}/{filename}"
    base = release_dir(opts)
    os.makedirs(base, exist_ok=True)
    final = os.path.join(base, version)
    now = current(opts)
    if now["version"] == version and now["md5"] == md5:
        return {"version": version, "changed": False, "previous": version, "path": final}
    _clean_leftovers(base)
    try:
        meta = _read_json(os.path.join(final, META_NAME))
        if not (meta and meta.get("md5") == md5 and os.path.isfile(os.path.join(final, filename))):
            staging = tempfile.mkdtemp(prefix=f".{version}.", dir=base)
            try:
                delivery.deliver(source, os.path.join(staging, filename), md5, backup=False, opts=opts)
                if filename.endswith(ARCHIVE_SUFFIXES):
                    with tarfile.open(os.path.join(staging, filename)) as archive:
                        archive.extractall(staging, filter="data")
                os.chmod(staging, 0o755)
                _write_json(os.path.join(staging, META_NAME),
                            {"version": version, "md5": md5, "file": filename, "installed": _now()})
                if os.path.isdir(final):
                    shutil.rmtree(final)
                os.replace(staging, final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        # Everything unpacked reaches the disk before current points at it
        # (kiosks are powered off every night).
        os.sync()
        _switch_current(base, version)
    except Exception as exc:
        _record_attempt(opts, version, False, str(exc))
        raise
    _record_attempt(opts, version, True)
    removed = _prune(base, keep=int((opts.get("kiosk") or {}).get("release_keep", DEFAULT_KEEP)), current=version)
    return {"version": version, "changed": True, "previous": now["version"], "path": final, "pruned": removed}


def _clean_leftovers(base):
    """Remove what an install cut short (power loss) left behind: hidden staging dirs and links."""
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if not name.startswith(".") or name in (ATTEMPT_NAME,):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif name.startswith(".current.") or name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _prune(base, keep, current):
    """Keep the ``keep`` newest versions (always the current one); remove older ones."""
    versions = []
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if name.startswith(".") or name == "current" or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            versions.append((Version(name), name))
        except InvalidVersion:
            continue
    versions.sort(reverse=True)
    removed = []
    for _key, name in versions[max(keep, 1):]:
        if name != current:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed.append(name)
    return removed
