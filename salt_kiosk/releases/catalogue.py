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

Hop 1 runs over HTTP: while ``stage`` runs, the master of masters serves the
one release file, on one configured address, under one random path per relay
that answers a single GET; each relay's minion fetches it with
:func:`salt_kiosk.node.delivery.deliver` (md5 checked while streaming) and the server
stops when staging ends. Hop 2 uses the same function with a ``salt://`` source
and the md5 recorded centrally.

Trust: ``publish`` reads local files only inside ``kiosk:release_sources`` and
URLs only under ``kiosk:release_urls``; everything else is refused before it is
opened or fetched, so an error never tells anything about other files. Kiosks
check every member of a release archive before anything is unpacked (no
absolute names, no ``..``, links only to places inside the release, no devices,
FIFOs, setuid or setgid, size and member caps), independently of the Python
version's ``tarfile`` filters, which stay as a second layer.

Configuration (``kiosk:`` key). Master of masters:

``release_sources``
    Absolute directories ``publish`` may read release files from (real paths:
    symbolic links and ``..`` are resolved before the check). Default: none,
    so local paths are refused until it is set.
``release_urls``
    http(s) URL prefixes ``publish`` may fetch from (scheme, host and port
    must match exactly, the path must start with the prefix's path; redirects
    are followed only to allowed URLs). Default: none.
``release_serve_address``
    IP address of this master the hop-1 server binds to and that the relays
    fetch from (the address their ``syndic_master`` points at). Default: the
    master's ``interface`` when it is one address; a master listening on all
    addresses (``0.0.0.0``, Salt's default) must set it.
``release_serve_port``
    TCP port of the hop-1 server (default 0: a free port for each staging).
``release_store``
    Where published releases are kept (default ``<cachedir>/kiosk/releases``).

Kiosks (minion config):

``release_dir``, ``release_keep``
    Where releases are installed (default ``/opt/kiosk/releases``) and how many
    versions stay (3).
``release_max_bytes``
    The most bytes a release may take once installed: the release file plus
    every member it unpacks (default 1 GiB).
``release_max_members``
    The most members a release archive may hold (default 20000).
"""

import contextlib
import datetime
import functools
import hashlib
import http.server
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request

import sqlalchemy as sa
from packaging.version import InvalidVersion, Version

from salt_kiosk.db import schema
from salt_kiosk import clock
from salt_kiosk import fanout
from salt_kiosk.node import delivery
from salt_kiosk.power import actions as kpower
from salt_kiosk.config import campuses as campus_config
from salt_kiosk.errors import KioskInputError
from salt_kiosk.files import CHUNK, fsync_dir, md5_file, write_atomically

log = logging.getLogger(__name__)

DEFAULT_RELEASE_DIR = "/opt/kiosk/releases"
DEFAULT_RELEASE_ROOT = "/srv/salt"
DEFAULT_KEEP = 3
STAGE_DIR = "kiosk_releases"
META_NAME = ".kiosk-release.json"
ATTEMPT_NAME = ".kiosk-last-attempt.json"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
DEFAULT_MAX_BYTES = 1024 ** 3
DEFAULT_MAX_MEMBERS = 20000
#: Marks a second directory of one version (a reinstall with other content):
#: ``1.4.0~3f9a0c1e``. ``~`` never occurs in a normalised version.
COPY_MARK = "~"
#: Symbolic links followed while resolving one link, as Linux does (MAXSYMLINKS).
MAX_LINK_HOPS = 40
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


# --- master of masters: where release files may come from -----------------------


def _kiosk_conf(opts):
    return opts.get("kiosk") or {}


def _string_list(opts, key):
    """``kiosk:<key>`` as a list of non-empty strings (a single string is one item)."""
    value = _kiosk_conf(opts).get(key)
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
    path = source[len("file://"):] if source.startswith("file://") else source
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
        raise KioskInputError(
            f"source {source!r} does not exist or is not a regular file inside kiosk:release_sources"
        )
    return _local_reader(source, real, sources)


# --- master of masters: the hop-1 server ---------------------------------------


def serve_settings(opts):
    """
    ``(address, port)`` of the hop-1 server: ``kiosk:release_serve_address``
    (default: the master's ``interface`` when it is one address) and
    ``kiosk:release_serve_port`` (default 0: any free port). Never all
    addresses.
    """
    conf = _kiosk_conf(opts)
    if "release_http" in conf:
        raise KioskInputError(
            f"kiosk:release_http {conf['release_http']!r} is no longer read: set kiosk:release_serve_address "
            "(the IP address of this master that the relays reach) and, for a fixed port, kiosk:release_serve_port"
        )
    value = conf.get("release_serve_address")
    if value is None:
        interface = opts.get("interface") or "0.0.0.0"
        try:
            default = ipaddress.ip_address(str(interface))
        except ValueError:
            default = None
        if default is None or default.is_unspecified:
            raise KioskInputError(
                f"kiosk:release_serve_address is not set and this master's interface {interface!r} is every "
                "address: set kiosk:release_serve_address to the IP address of this master that the relays reach "
                "(their syndic_master), so the release server does not listen on every network"
            )
        value = str(default)
    try:
        address = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None or address.is_unspecified or address.is_multicast:
        raise KioskInputError(
            f"kiosk:release_serve_address {value!r} is not accepted: expected one IP address of this master "
            "that the relays reach, such as 10.0.0.10 (not 0.0.0.0 or ::, not a host name)"
        )
    port = conf.get("release_serve_port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise KioskInputError(
            f"kiosk:release_serve_port {port!r} is not a port: expected an integer 1-65535, or 0 for any free port"
        )
    return str(address), port


def _bind(address, port, handler=None):
    """The hop-1 server bound to ``address``/``port`` (a bare socket check when no handler)."""
    server_class = _Server6 if ":" in address else _Server
    try:
        if handler is None:
            with socket.socket(server_class.address_family, socket.SOCK_STREAM) as sock:
                sock.bind((address, port))
            return None
        return server_class((address, port), handler)
    except OSError as exc:
        raise KioskInputError(
            f"kiosk:release_serve_address {address!r} / kiosk:release_serve_port {port!r} cannot be used on this "
            f"master ({exc.strerror}): expected an address of this master and a free port"
        ) from exc


def check_serving(opts):
    """Check the hop-1 server's settings and that its address can be bound, before anything is read or recorded."""
    address, port = serve_settings(opts)
    _bind(address, port)
    return address, port


class _OneTimeHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET for a path handed out by :func:`serve_file`, once; 404 for anything else."""

    timeout = 60  # seconds a connection may stay idle: a stalled client cannot hold staging

    def __init__(self, *args, routes=None, lock=None, path=None, **kwargs):
        self.routes = routes
        self.lock = lock
        self.file = path
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        with self.lock:
            relay = self.routes.pop(self.path, None)
        if relay is None:
            log.warning("release server: refused GET %.200r from %s (unknown or already used path)",
                        self.path, self.client_address[0])
            self.send_error(404)
            return
        log.info("release server: %s fetches %s for %s", self.client_address[0], os.path.basename(self.file), relay)
        with open(self.file, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            shutil.copyfileobj(handle, self.wfile, CHUNK)

    def log_message(self, fmt, *args):
        log.debug("release server: " + fmt, *args)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def serve_file(opts, path, names):
    """
    Serve ``path`` over HTTP while the block runs, on
    :func:`serve_settings`' address and port, under one random path per item
    of ``names`` (the relays); each path answers one GET, every other request
    gets 404, and the server stops when the block ends. Yield ``{"urls":
    {name: url}, "address": "http://host:port"}``.
    """
    address, port = serve_settings(opts)
    routes = {}
    urls = {}
    for name in names:
        route = f"/{secrets.token_urlsafe(32)}/{urllib.parse.quote(os.path.basename(path))}"
        routes[route] = name
        urls[name] = route
    handler = functools.partial(_OneTimeHandler, routes=routes, lock=threading.Lock(), path=path)
    server = _bind(address, port, handler)
    host = f"[{address}]" if ":" in address else address
    base = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="kiosk-release-http", daemon=True)
    thread.start()
    try:
        yield {"urls": {name: base + route for name, route in urls.items()}, "address": base}
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
    table = schema.release_stages
    with kstore.begin() as conn:
        conn.execute(table.delete().where(table.c.version == version))
        rows = [
            {"version": version, "relay": relay, "ok": ok, "error": error, "staged_at": clock.utcnow()}
            for relay, (ok, error) in outcome.items()
        ]
        if rows:
            conn.execute(table.insert(), rows)


def stage(opts, kstore, release, relays=None, timeout=300, latest=False):
    """
    Hop 1: every relay's minion fetches the release from this master over HTTP
    and checks its md5. Each relay gets its own job and its own one-time URL
    (:func:`serve_file`); the server runs only while the relays fetch. Return
    ``{"staged": [...], "failed": {relay: reason}, "silent": [...],
    "served_from": "http://address:port"}`` and record it per relay.
    """
    relays = list(relays if relays is not None else all_relays(opts))
    if not relays:
        raise KioskInputError("no relays are configured under kiosk:campuses, so there is nowhere to stage")
    path = os.path.join(release_store(opts), release["version"], release["file"])
    newest = latest_release(kstore)
    latest = bool(latest) and newest is not None and newest["version"] == release["version"]
    with serve_file(opts, path, relays) as served:
        jobs = {
            relay: {
                "tgt": [relay],
                "fun": "kiosk.stage_release",
                "kwarg": {
                    "version": release["version"],
                    "url": served["urls"][relay],
                    "md5": release["md5"],
                    "filename": release["file"],
                    "latest": latest,
                },
            }
            for relay in relays
        }
        answers = fanout.run_jobs(opts, jobs, timeout)
    result = {"staged": [], "failed": {}, "silent": [], "served_from": served["address"]}
    outcome = {}
    for relay in relays:
        answer = answers.get(relay, {}).get(relay)
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


def publish(opts, kstore, version, source, md5=None, rollback_of=None, stage_timeout=300, stager=None,
            promote=True):
    """
    Record release ``version`` from ``source`` (a file inside
    ``kiosk:release_sources`` or an http(s) URL under ``kiosk:release_urls``),
    copy it into the release store with its md5 checked, and stage it on every
    relay; with ``promote`` (and when it is the newest version) the relays'
    ``latest.json`` points at it, so kiosks starting up install it.
    Publishing an existing version with different content is refused; with the
    same content it is staged again (idempotent).

    Every argument and setting is checked before ``source`` is opened: a
    refused source is never read, so no error says anything about it.

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
    chunks = check_source(opts, source)
    if stager is None:
        check_serving(opts)
    filename = os.path.basename(urllib.parse.urlsplit(source).path if "://" in source else source)
    return _publish(opts, kstore, version, source, filename, chunks, md5=md5, rollback_of=rollback_of,
                    stage_timeout=stage_timeout, stager=stager, promote=promote)


def _publish(opts, kstore, version, source, filename, chunks, md5=None, rollback_of=None, stage_timeout=300,
             stager=None, promote=True):
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
        row = existing or _record(kstore, {
            "version": version, "filename": filename, "md5": md5, "size": os.path.getsize(scratch),
            "source": source, "rollback_of": rollback_of,
        })
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
    if stager is None:
        check_serving(opts)
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

    return _publish(opts, kstore, new, path, target["file"], chunks, md5=target["md5"],
                    rollback_of=target["version"], stage_timeout=stage_timeout, stager=stager, promote=promote)


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
    table = schema.release_kiosks
    values["seen_at"] = clock.utcnow()
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
    table = schema.release_kiosks
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
                sa.select(schema.release_stages).where(schema.release_stages.c.version == latest["version"])
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


def _switch_current(base, name):
    tmp = os.path.join(base, f".current.{secrets.token_hex(4)}")
    os.symlink(name, tmp)
    os.replace(tmp, os.path.join(base, "current"))
    fsync_dir(base)


class UnsafeArchive(delivery.KioskDeliveryError):
    """A release archive was refused before anything was unpacked; the message names the member and why."""


def _positive_int(opts, key, default, unit):
    value = _kiosk_conf(opts).get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KioskInputError(f"kiosk:{key} {value!r} is not accepted: expected a positive number of {unit}")
    return value


def install_limits(opts):
    """
    ``{"max_bytes", "max_members"}`` from ``kiosk:release_max_bytes`` (default
    1 GiB: the release file plus everything it unpacks) and
    ``kiosk:release_max_members`` (default 20000).
    """
    return {
        "max_bytes": _positive_int(opts, "release_max_bytes", DEFAULT_MAX_BYTES, "bytes"),
        "max_members": _positive_int(opts, "release_max_members", DEFAULT_MAX_MEMBERS, "archive members"),
    }


_DIR, _FILE, _SYMLINK, _HARDLINK = "directory", "file", "symbolic link", "hard link"
_TYPE_NAMES = {
    tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "FIFO",
}
_ACCEPTED = "accepted: regular files, directories, and links to places inside the release"


def _archive_path(value, what):
    """The components of a member name (or hard link target): relative, no ``..``."""
    if not isinstance(value, str) or "\x00" in value:
        raise UnsafeArchive(f"{what} {value!r} is not a usable name ({_ACCEPTED})")
    if value.startswith("/"):
        raise UnsafeArchive(f"{what} {value!r} is an absolute path ({_ACCEPTED}, by relative names)")
    parts = tuple(part for part in value.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafeArchive(f"{what} {value!r} contains '..' ({_ACCEPTED}, by names without '..')")
    return parts


def _resolve_link(kinds, links, parts, target):
    """
    Resolve symbolic link ``parts`` -> ``target`` over the archive's own
    members, component by component as the kernel does (``..`` after a link
    leaves the link's target, not its name); raise when it leaves the release
    directory or does not end within :data:`MAX_LINK_HOPS` links.
    """
    name = "/".join(parts)
    hops = [0]

    def walk(stack, path):
        if path.startswith("/"):
            raise UnsafeArchive(
                f"member {name!r} is a symbolic link leading to the absolute path {path!r} ({_ACCEPTED})"
            )
        for comp in path.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not stack:
                    raise UnsafeArchive(
                        f"member {name!r} is a symbolic link to {target!r}, which leads outside the release "
                        f"directory ({_ACCEPTED})"
                    )
                stack.pop()
                continue
            stack.append(comp)
            key = tuple(stack)
            if kinds.get(key) == _SYMLINK:
                hops[0] += 1
                if hops[0] > MAX_LINK_HOPS:
                    raise UnsafeArchive(
                        f"member {name!r} is a symbolic link to {target!r} that does not resolve within "
                        f"{MAX_LINK_HOPS} links ({_ACCEPTED})"
                    )
                stack.pop()
                stack = walk(stack, links[key])
        return stack

    walk(list(parts[:-1]), target)


def check_members(archive, max_bytes=DEFAULT_MAX_BYTES, max_members=DEFAULT_MAX_MEMBERS, used=0, reserved=()):
    """
    Check every member of the open :class:`tarfile.TarFile` ``archive`` before
    anything is extracted, independently of tarfile's own filters; return the
    members to extract, owned by this process and without group/other write
    bits. Raise :class:`UnsafeArchive` naming the first member that:

    - has an absolute name or a ``..`` component, or a top-level name in
      ``reserved``;
    - is a device, a FIFO or any other special file, or has the setuid or
      setgid bit;
    - is written below a symbolic link, a hard link or a file of the archive,
      or repeats a name (except directories);
    - is a symbolic link that, resolved over the archive's own members, leaves
      the release directory, or a hard link to anything but a regular file
      earlier in the archive;
    - makes the archive exceed ``max_members`` members or ``max_bytes`` bytes
      (``used``: bytes already taken, e.g. the release file itself).
    """
    kinds = {}  # components -> kind; parent directories are implied by their members
    links = {}  # components -> target of each symbolic link
    sizes = {}  # components -> bytes of each regular file
    total = used
    members = []
    for count, member in enumerate(archive, start=1):
        if count > max_members:
            raise UnsafeArchive(
                f"release archive has more than {max_members} members (kiosk:release_max_members); "
                f"refused at member {member.name!r}"
            )
        name = member.name
        parts = _archive_path(name, "member")
        if not parts:
            if member.isdir():
                continue  # the archive's own top directory ("./"): the release directory itself
            raise UnsafeArchive(f"member {name!r} has no name ({_ACCEPTED})")
        if parts[0] in reserved:
            raise UnsafeArchive(f"member {name!r} would replace {parts[0]!r}, which the release itself uses")
        if member.mode & (stat.S_ISUID | stat.S_ISGID):
            raise UnsafeArchive(
                f"member {name!r} has the setuid or setgid bit (mode {member.mode:04o}; accepted: modes without them)"
            )
        for depth in range(1, len(parts)):
            prefix = parts[:depth]
            kind = kinds.setdefault(prefix, _DIR)
            if kind != _DIR:
                raise UnsafeArchive(
                    f"member {name!r} would be written through the {kind} {'/'.join(prefix)!r} "
                    f"({_ACCEPTED}; nothing is written below a link)"
                )
        previous = kinds.get(parts)
        if member.isdir():
            if previous not in (None, _DIR):
                raise UnsafeArchive(f"member {name!r} appears twice in the archive (a {previous}, then a directory)")
            kinds[parts] = _DIR
            member.mode = (member.mode & 0o755) | 0o700
        else:
            if previous is not None:
                raise UnsafeArchive(
                    f"member {name!r} appears twice in the archive (a {previous}, then again): "
                    "accepted: each name once"
                )
            size = 0
            if member.isreg():
                kinds[parts] = _FILE
                size = sizes[parts] = member.size
                member.mode &= 0o755
            elif member.issym():
                if not member.linkname:
                    raise UnsafeArchive(f"member {name!r} is a symbolic link without a target ({_ACCEPTED})")
                kinds[parts] = _SYMLINK
                links[parts] = member.linkname
            elif member.islnk():
                target = _archive_path(member.linkname, f"member {name!r}: hard link target")
                if kinds.get(target) not in (_FILE, _HARDLINK):
                    raise UnsafeArchive(
                        f"member {name!r} is a hard link to {member.linkname!r}, which is not a regular file "
                        f"earlier in the archive ({_ACCEPTED})"
                    )
                kinds[parts] = _HARDLINK
                # tarfile copies the target when it cannot link: count it.
                size = sizes[parts] = sizes[target]
            else:
                kind = _TYPE_NAMES.get(member.type, f"special file (tar type {member.type!r})")
                raise UnsafeArchive(f"member {name!r} is a {kind} ({_ACCEPTED})")
            total += size
            if total > max_bytes:
                raise UnsafeArchive(
                    f"release would take more than {max_bytes} bytes once unpacked (kiosk:release_max_bytes, "
                    f"counting the release file itself); refused at member {name!r}"
                )
        # Unpacked as this process's user, whatever the archive says.
        member.uid, member.gid, member.uname, member.gname = os.geteuid(), os.getegid(), "", ""
        members.append(member)
    for parts, target in links.items():
        _resolve_link(kinds, links, parts, target)
    return members


def _unpack(folder, filename, limits):
    """Check every member of the release archive, then extract them into ``folder``."""
    path = os.path.join(folder, filename)
    try:
        with tarfile.open(path, "r:*") as archive:
            members = check_members(archive, limits["max_bytes"], limits["max_members"],
                                    used=os.path.getsize(path), reserved=(filename, META_NAME))
            # tarfile's data filter (where this Python has it) is a second layer only.
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(folder, members=members, **extra)
    except UnsafeArchive as exc:
        raise UnsafeArchive(f"release file {filename} refused, nothing unpacked: {exc}") from None
    except tarfile.TarError as exc:
        raise delivery.KioskDeliveryError(f"release file {filename} could not be unpacked: {exc}") from exc


def _copies(base, version):
    """Directory names holding ``version``: ``<version>`` and ``<version>~<suffix>``."""
    return sorted(
        name for name in os.listdir(base)
        if (name == version or name.startswith(version + COPY_MARK)) and os.path.isdir(os.path.join(base, name))
        and not os.path.islink(os.path.join(base, name))
    )


def _installed_copy(base, version, md5, filename):
    """A complete directory of ``version`` with content ``md5`` already on disk, or None."""
    for name in _copies(base, version):
        folder = os.path.join(base, name)
        meta = _read_json(os.path.join(folder, META_NAME))
        if meta and meta.get("md5") == md5 and os.path.isfile(os.path.join(folder, filename)):
            return folder
    return None


def _fresh_name(base, version):
    name = version
    while os.path.lexists(os.path.join(base, name)):
        name = f"{version}{COPY_MARK}{secrets.token_hex(4)}"
    return os.path.join(base, name)


def install(opts, version, md5, filename, source=None):
    """
    Install ``version`` on this kiosk: fetch ``source`` (default
    ``salt://kiosk_releases/<version>/<filename>`` from this minion's master)
    into a new directory with the md5 checked, check every member of an
    archive and unpack it, then switch the ``current`` symlink atomically. A
    failure leaves ``current`` where it was and is recorded as the last
    attempt (``kiosk.release`` reports it).

    The directory ``current`` points at is never touched before its
    replacement is complete: a release is unpacked into a hidden staging
    directory, synced to disk, renamed to ``<version>`` (or
    ``<version>~<suffix>`` when a copy of that version with other content is
    there, e.g. the current one), ``current`` is switched, and only then is
    the other copy removed.
    """
    version = check_version(version)
    md5 = delivery.check_md5(md5)
    filename = check_filename(filename)
    limits = install_limits(opts)
    source = source or f"salt://{STAGE_DIR}/{version}/{filename}"
    base = release_dir(opts)
    os.makedirs(base, exist_ok=True)
    now = current(opts)
    if now["version"] == version and now["md5"] == md5:
        return {"version": version, "changed": False, "previous": version, "path": now["path"]}
    _clean_leftovers(base)
    try:
        folder = _installed_copy(base, version, md5, filename)
        if folder is None:
            staging = tempfile.mkdtemp(prefix=f".{version}.", dir=base)
            try:
                delivery.deliver(source, os.path.join(staging, filename), md5, backup=False, opts=opts)
                if filename.endswith(ARCHIVE_SUFFIXES):
                    _unpack(staging, filename, limits)
                elif os.path.getsize(os.path.join(staging, filename)) > limits["max_bytes"]:
                    raise delivery.KioskDeliveryError(
                        f"release file {filename} is larger than {limits['max_bytes']} bytes (kiosk:release_max_bytes)"
                    )
                os.chmod(staging, 0o755)
                _write_json(os.path.join(staging, META_NAME),
                            {"version": version, "md5": md5, "file": filename, "installed": _now()})
                # Everything unpacked reaches the disk before the directory
                # gets its name and current points at it (kiosks are powered
                # off every night).
                os.sync()
                folder = _fresh_name(base, version)
                os.replace(staging, folder)
                fsync_dir(base)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        _switch_current(base, os.path.basename(folder))
        for name in _copies(base, version):
            if name != os.path.basename(folder):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    except Exception as exc:
        _record_attempt(opts, version, False, str(exc))
        raise
    _record_attempt(opts, version, True)
    removed = _prune(base, keep=int(_kiosk_conf(opts).get("release_keep", DEFAULT_KEEP)),
                     current=os.path.basename(folder))
    return {"version": version, "changed": True, "previous": now["version"], "path": folder, "pruned": removed}


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
    """
    Keep the ``keep`` newest versions (always the directory ``current`` names,
    one directory per kept version); remove the others.
    """
    by_version = {}
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if name.startswith(".") or name == "current" or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            key = Version(name.split(COPY_MARK, 1)[0])
        except InvalidVersion:
            continue
        by_version.setdefault(key, []).append(name)
    removed = []
    for index, key in enumerate(sorted(by_version, reverse=True)):
        names = by_version[key]
        if current in names:
            kept = current
        elif index < max(keep, 1):
            kept = max(names, key=lambda n: os.stat(os.path.join(base, n)).st_mtime)
        else:
            kept = None
        for name in sorted(names):
            if name != kept:
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
                removed.append(name)
    return removed
