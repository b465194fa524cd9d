"""
The returner's durable spool: job results that could not be written yet.

One fsynced JSON file per item under ``<cachedir>/kiosk_mysql_spool``
(``kiosk_mysql:spool_dir``), replayed in order under a file lock. The spool is
bounded in items (``kiosk_mysql:spool_max``, default 100,000) and in bytes
(``kiosk_mysql:spool_max_bytes``, default 256 MiB), and items the database
refused (kept as ``.json.bad`` for inspection) count against both bounds: when
an item would exceed either, it is dropped (a refused item is not kept) with an
ERROR log line saying so. Each file's size is part of its name, so the bound
costs one directory listing, not a stat per file. Several master processes may
each add one item past the bound at the same instant; no more.
"""

import fcntl
import itertools
import json
import logging
import os
import re
import time

from salt_kiosk.files import write_atomically

log = logging.getLogger(__name__)

DEFAULT_SPOOL_MAX = 100_000
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024


def _default(obj):
    return obj.decode("utf-8", "replace") if isinstance(obj, bytes) else str(obj)


def dumps(value):
    """JSON for anything Salt returns (bytes and odd types become text)."""
    return json.dumps(value, default=_default)


class Spool:
    """
    Durable FIFO of items that could not be written yet (one JSON file per
    item), bounded in items (``limit``) and bytes (``max_bytes``); items put
    aside as ``.json.bad`` count against both.
    """

    _counter = itertools.count(1)
    #: ``<time_ns>-<pid>-<counter>-<size>.json[.bad]``; names without the size
    #: (written before sizes were recorded) are stat'ed.
    _SIZED = re.compile(r"^\d{20}-\d{7}-\d{9}-(\d{12})\.json(?:\.bad)?$")

    def __init__(self, folder, limit, max_bytes=DEFAULT_SPOOL_MAX_BYTES):
        self.folder = folder
        self.limit = limit
        self.max_bytes = max_bytes
        os.makedirs(folder, mode=0o700, exist_ok=True)

    def entries(self):
        return sorted(name for name in os.listdir(self.folder) if name.endswith(".json"))

    def __len__(self):
        return len(self.entries())

    def usage(self):
        """``(items, bytes)`` held in the spool directory, waiting and refused (``.bad``) alike."""
        items = size = 0
        for name in os.listdir(self.folder):
            if not name.endswith((".json", ".json.bad")):
                continue
            items += 1
            match = self._SIZED.match(name)
            if match:
                size += int(match.group(1))
                continue
            try:
                size += os.stat(os.path.join(self.folder, name)).st_size
            except FileNotFoundError:
                items -= 1  # replayed meanwhile
        return items, size

    def _room(self, kind, data, what):
        """True when ``data`` fits under both bounds; log the drop otherwise."""
        items, size = self.usage()
        if items + 1 <= self.limit and size + len(data) <= self.max_bytes:
            return True
        log.error(
            "kiosk_mysql spool %s is FULL (%d items of kiosk_mysql:spool_max %d, %d bytes of "
            "kiosk_mysql:spool_max_bytes %d, refused .bad items included): dropping %s %s item of %d bytes; "
            "restore the database connection and inspect or delete the .json.bad files",
            self.folder,
            items,
            self.limit,
            size,
            self.max_bytes,
            what,
            kind,
            len(data),
        )
        return False

    def _name(self, size, suffix):
        # Wall-clock order across the master's processes, then a per-process counter.
        return f"{time.time_ns():020d}-{os.getpid():07d}-{next(self._counter):09d}-{size:012d}{suffix}"

    def _encode(self, kind, payload):
        text = dumps({"kind": kind, "payload": payload})
        return text, text.encode("utf-8")

    def put(self, kind, payload):
        text, data = self._encode(kind, payload)
        if not self._room(kind, data, "a"):
            return False
        write_atomically(os.path.join(self.folder, self._name(len(data), ".json")), text, mode=0o600)
        return True

    def put_aside(self, kind, payload, reason):
        """
        Keep an item the database refuses (not a connection problem) for
        inspection, when the spool's bounds allow; return True when kept.
        """
        text, data = self._encode(kind, payload)
        if not self._room(kind, data, "a refused"):
            log.error("kiosk_mysql: the database refused a %s item (%s); not kept (spool full)", kind, reason)
            return False
        name = self._name(len(data), ".json.bad")
        write_atomically(os.path.join(self.folder, name), text, mode=0o600)
        log.error(
            "kiosk_mysql: the database refused a %s item (%s); kept as %s",
            kind,
            reason,
            os.path.join(self.folder, name),
        )
        return True

    def replay(self, apply, is_poison=lambda exc: False, block=True):
        """
        Apply every spooled item in order and remove it. Stop (keeping the
        rest) when the database is unreachable; an item the database itself
        refuses (``is_poison``) is moved aside as ``.bad`` so it cannot block
        the spool. Return the number of items written, or None when another
        process holds the replay lock and ``block`` is False.
        """
        lock_path = os.path.join(self.folder, ".lock")
        with open(lock_path, "w", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
            except BlockingIOError:
                return None
            done = 0
            for name in self.entries():
                path = os.path.join(self.folder, name)
                try:
                    with open(path, encoding="utf-8") as handle:
                        item = json.load(handle)
                except FileNotFoundError:
                    continue  # replayed by another process
                except ValueError:
                    log.error("kiosk_mysql spool item %s is unreadable; moved aside", path)
                    os.replace(path, path + ".bad")
                    continue
                try:
                    apply(item["kind"], item["payload"])
                except Exception as exc:  # pylint: disable=broad-except
                    if not is_poison(exc):
                        raise
                    log.error(
                        "kiosk_mysql: the database refuses spooled item %s (%s); moved aside",
                        path,
                        str(exc).splitlines()[0][:200],
                    )
                    os.replace(path, path + ".bad")
                    continue
                os.unlink(path)
                done += 1
            if done:
                log.warning("kiosk_mysql replayed %d spooled item(s) from %s", done, self.folder)
            return done
