"""
The release catalogue on the master of masters: publish a release file (hop 0),
roll back with a new version, list what was published.

Where things live: ``<kiosk:release_store>/<version>/<file>`` (default
``<cachedir>/kiosk/releases``) and one row per release in ``kiosk_releases``.
Publishing stages the release on every relay (:mod:`salt_kiosk.releases.stage`);
kiosks install it with :mod:`salt_kiosk.node.release_install`, started by
:mod:`salt_kiosk.releases.rollout`.

Trust: ``publish`` reads local files only inside ``kiosk:release_sources`` and
URLs only under ``kiosk:release_urls``; everything else is refused before it is
opened or fetched, so an error never tells anything about other files.

Configuration (master of masters, ``kiosk:`` key):

``release_sources``
    Absolute directories ``publish`` may read release files from (real paths:
    symbolic links and ``..`` are resolved before the check). Default: none,
    so local paths are refused until it is set.
``release_urls``
    http(s) URL prefixes ``publish`` may fetch from (scheme, host and port
    must match exactly, the path must start with the prefix's path; redirects
    are followed only to allowed URLs). Default: none.
``release_store``
    Where published releases are kept (default ``<cachedir>/kiosk/releases``).
"""

import contextlib
import hashlib
import logging
import os
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import sqlalchemy as sa
from packaging.version import Version

from salt_kiosk import clock, config
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError
from salt_kiosk.files import CHUNK, md5_file
from salt_kiosk.node import delivery, release_health
from salt_kiosk.node.release_install import ARCHIVE_SUFFIXES, check_filename, check_version, version_key
from salt_kiosk.releases import serve, stage

log = logging.getLogger(__name__)


def next_version(version):
    """The version after ``version`` (last release component + 1): 1.4.0 -> 1.4.1."""
    release = list(Version(version).release)
    release[-1] += 1
    return ".".join(str(part) for part in release)


def release_store(opts):
    kiosk = opts.get("kiosk") or {}
    return kiosk.get("release_store") or os.path.join(
        opts.get("cachedir", "/var/cache/salt/master"), "kiosk", "releases"
    )


def _row(row):
    return {
        "version": row.version,
        "file": row.filename,
        "md5": row.md5,
        "size": row.size,
        "source": row.source,
        "rollback_of": row.rollback_of,
        "published": clock.iso(row.created_at),
        "health": row.health or None,
    }


def list_releases(kstore):
    """Every release, oldest first (publishing order)."""
    with kstore.connect() as conn:
        rows = conn.execute(sa.select(schema.releases).order_by(schema.releases.c.seq)).all()
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


def find_release(kstore, version=None):
    """
    The published release ``version`` (default: the latest); a clear error
    naming the published versions when there is none.
    """
    if version is None:
        release = latest_release(kstore)
        if release is None:
            raise KioskInputError("no release has been published yet")
        return release
    release = get_release(kstore, check_version(version))
    if release is None:
        known = ", ".join(rel["version"] for rel in list_releases(kstore)) or "none"
        raise KioskInputError(f"release {version!r} is unknown: published versions are {known}")
    return release


def _string_list(opts, key):
    """``kiosk:<key>`` as a list of non-empty strings (a single string is one item)."""
    value = config.section(opts).get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
        raise KioskInputError(f"kiosk:{key} {value!r} is not a list of strings")
    return list(value)


def release_sources(opts):
    """
    The real paths of ``kiosk:release_sources``: absolute directories, never
    ``/`` itself (that would allow every file of the master).
    """
    sources = []
    for item in _string_list(opts, "release_sources"):
        if not os.path.isabs(item):
            raise KioskInputError(
                f"kiosk:release_sources entry {item!r} is relative: expected absolute directories such as /srv/releases"
            )
        real = os.path.realpath(item)
        if real == os.path.realpath(os.sep):
            raise KioskInputError(
                f"kiosk:release_sources entry {item!r} is the root directory, which would allow every file of "
                "this master: expected the directories release files are kept in, such as /srv/releases"
            )
        sources.append(real)
    return sources


def _url_parts(url):
    """(scheme, host, port, path) of an http(s) URL; raise ValueError when it is not one."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise ValueError(url)
    port = parts.port or (443 if scheme == "https" else 80)  # raises ValueError for a bad port
    return scheme, parts.hostname.lower(), port, parts.path or "/"


def release_urls(opts):
    """``kiosk:release_urls`` as parsed prefixes: http(s) URLs without user or password."""
    prefixes = []
    for item in _string_list(opts, "release_urls"):
        try:
            prefixes.append((item, _url_parts(item)))
        except ValueError:
            raise KioskInputError(
                f"kiosk:release_urls entry {item!r} is not an http(s) URL prefix: expected such as "
                "https://build.example/releases/ (no user or password)"
            ) from None
    return prefixes


def _url_allowed(url, prefixes):
    try:
        scheme, host, port, path = _url_parts(url)
    except ValueError:
        return False
    segments = urllib.parse.unquote(path).split("/")
    if ".." in segments or "." in segments or "\\" in url or any(ord(char) < 33 for char in url):
        return False
    for _text, (p_scheme, p_host, p_port, p_path) in prefixes:
        if (scheme, host, port) != (p_scheme, p_host, p_port):
            continue
        folder = p_path if p_path.endswith("/") else p_path + "/"
        if path == p_path or path.startswith(folder):
            return True
    return False


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _AllowedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL that ``kiosk:release_urls`` allows."""

    def __init__(self, prefixes):
        super().__init__()
        self.prefixes = prefixes

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not _url_allowed(newurl, self.prefixes):
            raise delivery.KioskDeliveryError(
                f"source {req.full_url!r} redirects to {newurl!r}, which is not under kiosk:release_urls; not followed"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _local_reader(source, real, sources):
    """Chunks of the checked file ``real``, opened without following a swapped-in link."""

    def chunks():
        try:
            fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise delivery.KioskDeliveryError(f"source {source!r} could not be opened: {exc.strerror}") from exc
        try:
            opened = f"/proc/self/fd/{fd}"
            if os.path.islink(opened) and not any(_inside(os.readlink(opened), folder) for folder in sources):
                raise KioskInputError(f"source {source!r} moved out of kiosk:release_sources while being opened")
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise KioskInputError(f"source {source!r} is not a regular file")
            with os.fdopen(fd, "rb", closefd=False) as handle:
                yield from iter(lambda: handle.read(CHUNK), b"")
        finally:
            os.close(fd)

    return chunks


def _url_reader(source, prefixes, timeout=60):
    def chunks():
        opener = urllib.request.build_opener(_AllowedRedirects(prefixes))
        try:
            response = opener.open(source, timeout=timeout)  # nosec: checked against kiosk:release_urls
        except urllib.error.HTTPError as exc:
            raise delivery.KioskDeliveryError(
                f"source {source!r} could not be fetched: HTTP {exc.code} {exc.reason}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise delivery.KioskDeliveryError(
                f"source {source!r} could not be fetched: {getattr(exc, 'reason', exc)}"
            ) from exc
        with response:
            yield from iter(lambda: response.read(CHUNK), b"")

    return chunks


def check_source(opts, source):
    """
    Decide whether ``publish`` may read ``source``, before anything is opened
    or fetched. Return a callable yielding its content in chunks; raise naming
    the value and the configuration key otherwise.

    Local paths (absolute, or ``file://``) must be regular files inside one of
    ``kiosk:release_sources`` once symbolic links and ``..`` are resolved;
    http(s) URLs must be under one of ``kiosk:release_urls``.
    """
    kind = delivery.source_kind(source)
    if kind == "salt":
        raise KioskInputError(
            f"source {source!r}: publish takes a path inside kiosk:release_sources or an http(s) URL under "
            "kiosk:release_urls, not salt://"
        )
    if kind == "http":
        prefixes = release_urls(opts)
        if not prefixes:
            raise KioskInputError(
                f"source {source!r} is a URL, but kiosk:release_urls is not set in this master's configuration: "
                "add the URL prefixes releases may be fetched from (such as https://build.example/releases/)"
            )
        if not _url_allowed(source, prefixes):
            allowed = ", ".join(text for text, _parts in prefixes)
            raise KioskInputError(
                f"source {source!r} is not under an allowed URL prefix (kiosk:release_urls: {allowed}): "
                "expected an http(s) URL starting with one of them, without '..' or '.' segments"
            )
        return _url_reader(source, prefixes)
    path = source[len("file://") :] if source.startswith("file://") else source
    sources = release_sources(opts)
    if not sources:
        raise KioskInputError(
            f"source {source!r} is a path on this master, but kiosk:release_sources is not set in this master's "
            "configuration: add the directories release files may be read from (such as /srv/releases)"
        )
    if not os.path.isabs(path):
        raise KioskInputError(
            f"source {source!r} is not an absolute path: expected a file inside kiosk:release_sources"
        )
    real = os.path.realpath(path)
    if not any(_inside(real, folder) and real != folder for folder in sources):
        raise KioskInputError(
            f"source {source!r} is not inside the release sources (kiosk:release_sources: "
            f"{', '.join(_string_list(opts, 'release_sources'))}): expected a file in one of them "
            "(symbolic links and '..' are resolved first)"
        )
    if not os.path.isfile(real):
        raise KioskInputError(f"source {source!r} does not exist or is not a regular file inside kiosk:release_sources")
    return _local_reader(source, real, sources)


def _refuse_other_content(existing, version, md5):
    if existing and existing["md5"] != md5:
        raise KioskInputError(
            f"version {version} is already published with md5 {existing['md5']} ({existing['file']}); "
            f"refusing different content (md5 {md5}): publish it under a new version"
        )


def _stream_to_scratch(store_dir, chunks):
    """Copy the content ``chunks()`` yields into a scratch file of the release store; return (path, md5)."""
    fd, scratch = tempfile.mkstemp(prefix=".incoming-", dir=store_dir)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks():
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
    table = schema.releases
    try:
        with kstore.begin() as conn:
            seq = (conn.execute(sa.select(sa.func.max(table.c.seq))).scalar() or 0) + 1
            conn.execute(table.insert().values(seq=seq, created_at=clock.utcnow(), **release_row))
    except sa.exc.IntegrityError:
        pass  # published concurrently: compare with what is there
    return get_release(kstore, release_row["version"])


def publish(
    opts,
    kstore,
    version,
    source,
    md5=None,
    rollback_of=None,
    stage_timeout=300,
    stager=None,
    latest=True,
    health=None,
):
    """
    Record release ``version`` from ``source`` (a file inside
    ``kiosk:release_sources`` or an http(s) URL under ``kiosk:release_urls``),
    copy it into the release store with its md5 checked, and stage it on every
    relay; with ``latest`` (and when it is the newest version) the relays'
    ``latest.json`` points at it, so kiosks starting up install it.
    Publishing an existing version with different content is refused; with the
    same content it is staged again (idempotent).

    Every argument and setting is checked before ``source`` is opened: a
    refused source is never read, so no error says anything about it.

    The content is streamed into a scratch file first and moves into the
    version's folder only after the database row agrees with its md5, so two
    publishers racing on one version cannot leave the store and the catalogue
    disagreeing.

    ``health``: the publish-time health settings (``{"cmd", "url",
    "timeout"}``, any of them; see :mod:`salt_kiosk.node.release_health`),
    which override the manifest's on every kiosk. The archive's own manifest
    ``kiosk-release.yaml`` is checked here too: a refused manifest (or
    setting) records, stores and stages nothing.
    """
    version = check_version(version)
    if md5 is not None:
        md5 = delivery.check_md5(md5)
    health = release_health.check_settings(health) or None
    if not stage.all_relays(opts):
        raise KioskInputError("no relays are configured under kiosk:campuses, so there is nowhere to stage")
    chunks = check_source(opts, source)
    if stager is None:
        serve.check_serving(opts)
    filename = os.path.basename(urllib.parse.urlsplit(source).path if "://" in source else source)
    return _publish(
        opts,
        kstore,
        version,
        source,
        filename,
        chunks,
        md5=md5,
        rollback_of=rollback_of,
        stage_timeout=stage_timeout,
        stager=stager,
        latest=latest,
        health=health,
    )


def _publish(
    opts, kstore, version, source, filename, chunks, *, md5, rollback_of, stage_timeout, stager, latest, health
):
    existing = get_release(kstore, version)
    if existing:
        version = existing["version"]
        filename = existing["file"]
        if md5 is not None:
            _refuse_other_content(existing, version, md5)
    else:
        filename = check_filename(filename)
    store_dir = release_store(opts)
    os.makedirs(store_dir, mode=0o750, exist_ok=True)
    scratch, actual = _stream_to_scratch(store_dir, chunks)
    try:
        if md5 is not None and actual != md5:
            raise delivery.Md5Mismatch(source, md5, actual)
        md5 = actual
        _refuse_other_content(existing, version, md5)
        check_manifest(scratch, filename)
        if existing and (existing["health"] or None) != health:
            raise KioskInputError(
                f"version {version} is already published with the health settings {existing['health']}; "
                f"refusing other settings ({health}): publish it under a new version"
            )
        row = existing or _record(
            kstore,
            {
                "version": version,
                "filename": filename,
                "md5": md5,
                "size": os.path.getsize(scratch),
                "source": source,
                "rollback_of": rollback_of,
                "health": health,
            },
        )
        _refuse_other_content(row, version, md5)
        dest = os.path.join(store_dir, version, row["file"])
        os.makedirs(os.path.dirname(dest), mode=0o750, exist_ok=True)
        if not (os.path.isfile(dest) and md5_file(dest) == md5):
            # Read by this master only (it serves it to the relays itself).
            os.chmod(scratch, 0o640)
            os.replace(scratch, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch)
    release = get_release(kstore, version)
    release["new"] = existing is None
    newest = latest_release(kstore)
    latest = bool(latest) and newest is not None and newest["version"] == version
    release["staging"] = (stager or stage.stage)(opts, kstore, release, dest, timeout=stage_timeout, latest=latest)
    return release


def check_manifest(path, filename):
    """
    Check the manifest ``kiosk-release.yaml`` at the top of the release archive
    at ``path`` (nothing for a release that is not an archive, or has none);
    return it. Raises naming the bad key, as every kiosk would.
    """
    if not filename.endswith(ARCHIVE_SUFFIXES):
        return None
    try:
        with tarfile.open(path, "r:*") as archive:
            return release_health.manifest_of_archive(archive)
    except tarfile.TarError as exc:
        raise KioskInputError(f"release file {filename} is not a readable archive: {exc}") from None


def rollback(opts, kstore, to=None, version=None, stage_timeout=300, stager=None, latest=True):
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
    if stager is None:
        serve.check_serving(opts)
    # The content comes from this master's own release store, not from a
    # source given by the caller.
    path = os.path.join(release_store(opts), target["version"], target["file"])
    if not os.path.isfile(path):
        raise KioskInputError(
            f"release {target['version']} is recorded but its file is missing from the release store ({path})"
        )

    def chunks():
        with open(path, "rb") as handle:
            yield from iter(lambda: handle.read(CHUNK), b"")

    return _publish(
        opts,
        kstore,
        new,
        path,
        target["file"],
        chunks,
        md5=target["md5"],
        rollback_of=target["version"],
        stage_timeout=stage_timeout,
        stager=stager,
        latest=latest,
        health=target["health"],
    )
