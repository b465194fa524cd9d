"""
File helpers shared by the node side (delivery, release install and staging)
and the master side (release catalogue, job spool, VNC token files).
"""

import contextlib
import hashlib
import json
import os
import tempfile

from salt_kiosk.errors import KioskInputError

CHUNK = 1024 * 1024


def md5_file(path):
    """
    Return the hex md5 of the file at ``path``, read in 1 MiB chunks.
    """
    if not os.path.isfile(path):
        raise KioskInputError(f"{path!r} does not exist or is not a regular file")
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path):
    """Flush a directory entry (after a rename) to disk; best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(path, text, mode=0o644):
    """
    Replace ``path`` with ``text``: a temporary file in the same directory,
    flushed and fsynced, then renamed over ``path``; never a half-written file.
    """
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def write_json(path, data):
    """Write ``data`` as JSON (sorted keys) to ``path`` atomically."""
    write_atomically(path, json.dumps(data, sort_keys=True))


def read_json(path):
    """The JSON document at ``path``; ``None`` when the file is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None
