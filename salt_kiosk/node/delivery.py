"""
Verified file delivery: fetch, check md5 while streaming, install atomically.

:func:`deliver` is the one code path every hop uses (master of masters -> relay
file root, relay -> kiosk, local copies):

1. every argument is checked first (md5 = 32 hex digits, dest absolute without
   ``..``, not a directory, source scheme known);
2. when dest already holds a file with the expected md5 nothing is fetched
   (``changed: False``);
3. the source is streamed into a temporary file next to dest while its md5 is
   computed; the file is flushed and fsynced;
4. only when the md5 matches is it renamed over dest (the previous copy is kept
   as ``<dest>.kiosk-prev`` first); on a mismatch the partial file is removed,
   dest is untouched and the error names the expected and actual md5.

Sources: ``salt://path`` (the minion's own master's file server, read chunk by
chunk over the file channel), ``http://`` / ``https://`` and local paths
(absolute, or ``file://``).
"""

import collections
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from salt.exceptions import CommandExecutionError

from salt_kiosk.errors import KioskInputError
from salt_kiosk.files import CHUNK, fsync_dir, md5_file

log = logging.getLogger(__name__)

MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")
PREV_SUFFIX = ".kiosk-prev"
DEFAULT_STREAMS = 3
SCHEMES = ("salt://", "http://", "https://", "file://", "/ (absolute local path)")


class KioskDeliveryError(CommandExecutionError):
    """The source could not be fetched or its md5 did not match; dest is untouched."""


class Md5Mismatch(KioskDeliveryError):
    """The fetched content's md5 differs from the expected one."""

    def __init__(self, source, expected, actual):
        self.expected = expected
        self.actual = actual
        super().__init__(f"md5 mismatch for {source}: expected {expected}, got {actual}; destination left untouched")


def check_md5(value, field="md5"):
    """Return ``value`` lower-cased when it is 32 hex digits, else raise."""
    if isinstance(value, int) and not isinstance(value, bool) and len(str(value)) == 32:
        value = str(value)  # an all-digit md5 that YAML read as a number
    if not isinstance(value, str) or not MD5_RE.match(value):
        raise KioskInputError(f"{field} {value!r} is not an md5 checksum: expected 32 hexadecimal digits")
    return value.lower()


def check_dest(dest):
    """Return ``dest`` when it is an absolute path without ``..`` that is not a directory."""
    if not isinstance(dest, str) or not dest:
        raise KioskInputError(f"dest {dest!r} is not a path: expected an absolute file path")
    if not os.path.isabs(dest):
        raise KioskInputError(f"dest {dest!r} is relative: expected an absolute file path")
    if ".." in dest.replace("\\", "/").split("/"):
        raise KioskInputError(f"dest {dest!r} contains '..': expected a path without parent references")
    if dest.endswith(("/", "\\")) or os.path.isdir(dest):
        raise KioskInputError(f"dest {dest!r} is a directory: expected the path of a file")
    return os.path.normpath(dest)


def check_mode(mode):
    """
    Return ``mode`` as an int from ``"0644"``, ``"644"`` or ``644``. Only
    permission bits (0000-0777): setuid, setgid and sticky are refused, so a
    delivery never makes a file that runs with its owner's or group's rights.
    """
    if mode is None:
        return None
    # Ints are read digit by digit (644 -> 0o644), as Salt's file states do;
    # quote modes with a leading zero in YAML ("0644").
    text = str(mode) if isinstance(mode, (str, int)) and not isinstance(mode, bool) else ""
    if not re.fullmatch(r"0?[0-7]{3,4}", text):
        raise KioskInputError(f"mode {mode!r} is not a file mode: expected octal digits such as 0644")
    value = int(text, 8)
    if value & 0o7000:
        raise KioskInputError(
            f"mode {mode!r} sets the setuid, setgid or sticky bit: expected permission bits only, "
            "0000-0777 (such as 0644 or 0755); nothing was written"
        )
    return value


def source_kind(source):
    """Classify ``source``: ``salt``, ``http`` or ``local``; raise for anything else."""
    if not isinstance(source, str) or not source:
        raise KioskInputError(f"source {source!r} is not a location: expected one of {', '.join(SCHEMES)}")
    if source.startswith("salt://"):
        if len(source) <= len("salt://"):
            raise KioskInputError(f"source {source!r} names no file")
        return "salt"
    if source.startswith(("http://", "https://")):
        return "http"
    if source.startswith("file://") or os.path.isabs(source):
        return "local"
    raise KioskInputError(f"source {source!r} has an unsupported scheme: expected one of {', '.join(SCHEMES)}")


# --- sources: each yields the content in chunks ---------------------------------


def _local_chunks(source):
    path = source[len("file://") :] if source.startswith("file://") else source
    if not os.path.isfile(path):
        raise KioskDeliveryError(f"source {source!r} does not exist or is not a regular file")
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


def _http_chunks(source, timeout=60):
    try:
        response = urllib.request.urlopen(source, timeout=timeout)  # nosec: operator-supplied URL
    except urllib.error.HTTPError as exc:
        raise KioskDeliveryError(f"source {source!r} could not be fetched: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise KioskDeliveryError(f"source {source!r} could not be fetched: {getattr(exc, 'reason', exc)}") from exc
    with response:
        yield from iter(lambda: response.read(CHUNK), b"")


class _SaltFileReader:
    """
    Reads ``salt://`` content from the minion's master with the file server's
    own ``_serve_file`` requests (one chunk of the master's ``file_buffer_size``
    per request), ``streams`` requests in flight on as many channels, and
    yields the chunks in order. Unlike ``cp.get_file`` it asks for no
    server-side hash first and writes no cache copy.
    """

    def __init__(self, source, opts, streams):
        import salt.utils.url  # pylint: disable=import-outside-toplevel

        path, senv = salt.utils.url.split_env(source)
        self.source = source
        self.saltenv = senv or (opts.get("saltenv") or "base")
        self.relpath = path[len("salt://") :]
        self.opts = opts
        self.streams = max(1, int(streams))
        self.local = threading.local()
        self.clients = []
        self.lock = threading.Lock()

    def _client(self):
        client = getattr(self.local, "client", None)
        if client is None:
            import salt.fileclient  # pylint: disable=import-outside-toplevel

            client = salt.fileclient.get_file_client(self.opts)
            self.local.client = client
            with self.lock:
                self.clients.append(client)
        return client

    def fetch(self, offset):
        load = {"path": self.relpath, "saltenv": self.saltenv, "cmd": "_serve_file", "loc": offset}
        data = self._client()._channel_send(load, raw=True)  # pylint: disable=protected-access
        data = {(k.decode() if isinstance(k, bytes) else k): v for k, v in data.items()}
        chunk = data.get("data") or b""
        if isinstance(chunk, str):
            chunk = chunk.encode()
        if chunk and data.get("gzip"):
            import salt.utils.gzip_util  # pylint: disable=import-outside-toplevel

            chunk = salt.utils.gzip_util.uncompress(chunk)
        return chunk, bool(data.get("dest"))

    def __iter__(self):
        try:
            if not hasattr(self._client(), "_channel_send"):
                # A masterless minion (file_client: local) reads its own file_roots.
                local = self._client().get_file(self.source, dest="")
                if not local:
                    raise KioskDeliveryError(f"source {self.source!r} not found in saltenv {self.saltenv!r}")
                yield from _local_chunks(local)
                return
            first, exists = self.fetch(0)
            if not first:
                if not exists:
                    raise KioskDeliveryError(
                        f"source {self.source!r} not found on the master (saltenv {self.saltenv!r})"
                    )
                return
            yield first
            size = len(first)
            with concurrent.futures.ThreadPoolExecutor(self.streams, thread_name_prefix="kiosk-fetch") as pool:
                pending = collections.deque()
                offset = size
                for _ in range(self.streams):
                    pending.append(pool.submit(self.fetch, offset))
                    offset += size
                while pending:
                    chunk, _exists = pending.popleft().result()
                    if not chunk:
                        break
                    yield chunk
                    if len(chunk) < size:
                        break
                    pending.append(pool.submit(self.fetch, offset))
                    offset += size
                for future in pending:
                    future.cancel()
        finally:
            for client in self.clients:
                with contextlib.suppress(Exception):
                    client.destroy()


def open_source(source, opts=None, timeout=60):
    """Return an iterator over the content of ``source`` (see :func:`source_kind`)."""
    kind = source_kind(source)
    if kind == "salt":
        if opts is None:
            raise KioskInputError(f"source {source!r} needs a minion's configuration to reach its master")
        streams = (opts.get("kiosk") or {}).get("deliver_streams", DEFAULT_STREAMS)
        return iter(_SaltFileReader(source, opts, streams))
    if kind == "http":
        return _http_chunks(source, timeout=timeout)
    return _local_chunks(source)


# --- delivery -------------------------------------------------------------------


def _owner(user):
    if user is None:
        return None
    import pwd  # pylint: disable=import-outside-toplevel

    try:
        entry = pwd.getpwnam(str(user))
    except KeyError as exc:
        raise KioskInputError(f"user {user!r} does not exist on this host: expected an existing user name") from exc
    return entry.pw_uid, entry.pw_gid


def _apply_attrs(path, mode, owner):
    changes = {}
    st = os.stat(path)
    if mode is not None and (st.st_mode & 0o7777) != mode:
        os.chmod(path, mode)
        changes["mode"] = format(mode, "04o")
    if owner is not None and (st.st_uid, st.st_gid) != owner:
        os.chown(path, *owner)
        changes["user"] = owner[0]
    return changes


def check(source, dest, md5, mode=None, user=None):
    """Validate every argument of :func:`deliver`; return the normalised values."""
    md5 = check_md5(md5)
    dest = check_dest(dest)
    source_kind(source)
    mode = check_mode(mode)
    owner = _owner(user)
    return dest, md5, mode, owner


def plan(source, dest, md5, mode=None, user=None):
    """
    What :func:`deliver` would do, without doing it (``test=True``):
    ``{"changed": bool, "comment": ...}``.
    """
    dest, md5, mode, owner = check(source, dest, md5, mode, user)
    if os.path.isfile(dest) and md5_file(dest) == md5:
        pending = {}
        st = os.stat(dest)
        if mode is not None and (st.st_mode & 0o7777) != mode:
            pending["mode"] = format(mode, "04o")
        if owner is not None and (st.st_uid, st.st_gid) != owner:
            pending["user"] = user
        if pending:
            return {"changed": True, "comment": f"{dest} holds md5 {md5}; would set {pending}", "changes": pending}
        return {"changed": False, "comment": f"{dest} already holds md5 {md5}", "changes": {}}
    return {
        "changed": True,
        "comment": f"would fetch {source} into {dest} and check md5 {md5}",
        "changes": {"md5": md5},
    }


def deliver(source, dest, md5, mode=None, user=None, backup=True, makedirs=False, opts=None, timeout=60):
    """
    Deliver ``source`` to ``dest`` verified against ``md5``. Return
    ``{"dest", "md5", "changed", "bytes", "seconds", "backup", "changes"}``.

    Raises :class:`KioskInputError` for bad arguments and
    :class:`KioskDeliveryError` / :class:`Md5Mismatch` when the content cannot
    be fetched or is not the expected one; in both cases dest is untouched.
    """
    started = time.monotonic()
    dest, md5, mode, owner = check(source, dest, md5, mode, user)
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        if not makedirs:
            raise KioskInputError(
                f"dest {dest!r}: directory {parent!r} does not exist (pass makedirs=True to create it)"
            )
        os.makedirs(parent, exist_ok=True)
    result = {"dest": dest, "md5": md5, "changed": False, "bytes": 0, "backup": None, "changes": {}}
    if os.path.isfile(dest) and md5_file(dest) == md5:
        result["changes"] = _apply_attrs(dest, mode, owner)
        result["changed"] = bool(result["changes"])
        result["seconds"] = round(time.monotonic() - started, 4)
        return result

    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".kiosk-part", dir=parent)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with os.fdopen(fd, "wb") as handle:
            for chunk in open_source(source, opts=opts, timeout=timeout):
                digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        actual = digest.hexdigest()
        if actual != md5:
            raise Md5Mismatch(source, md5, actual)
        if os.path.isfile(dest):
            # The replaced file's mode and owner carry over unless given.
            previous = os.stat(dest)
            if mode is None:
                # Only permission bits carry over: new content never inherits
                # a setuid, setgid or sticky bit.
                mode = previous.st_mode & 0o777
            if owner is None and (previous.st_uid, previous.st_gid) != (os.getuid(), os.getgid()):
                owner = (previous.st_uid, previous.st_gid)
        if mode is None:
            mode = 0o644
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, *owner)
        if backup and os.path.isfile(dest):
            prev = dest + PREV_SUFFIX
            with contextlib.suppress(FileNotFoundError):
                os.unlink(prev)
            try:
                os.link(dest, prev)
            except OSError:
                shutil.copy2(dest, prev)
            result["backup"] = prev
        os.replace(tmp, dest)
        fsync_dir(parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    result.update(changed=True, bytes=size, changes={"md5": md5})
    result["seconds"] = round(time.monotonic() - started, 4)
    log.info("delivered %s to %s (%d bytes, md5 %s)", source, dest, size, md5)
    return result


def restore(dest):
    """
    Put back the copy :func:`deliver` kept (``<dest>.kiosk-prev``), atomically;
    the replaced content becomes the new ``.kiosk-prev``, so a second restore
    undoes the first. Return ``{"dest", "md5", "restored_from"}``.
    """
    dest = check_dest(dest)
    prev = dest + PREV_SUFFIX
    if not os.path.isfile(prev):
        raise KioskDeliveryError(f"no previous copy of {dest} to restore ({prev} does not exist)")
    parent = os.path.dirname(dest)
    # dest never disappears: the current content gets a second name first,
    # the previous copy is renamed over dest, then the second name becomes
    # the new previous copy.
    swap = os.path.join(parent, f".{os.path.basename(dest)}.{os.getpid()}.{threading.get_ident()}.kiosk-swap")
    had_dest = os.path.isfile(dest)
    if had_dest:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(swap)
        os.link(dest, swap)
    os.replace(prev, dest)
    if had_dest:
        os.replace(swap, prev)
    fsync_dir(parent)
    return {"dest": dest, "md5": md5_file(dest), "restored_from": prev}
