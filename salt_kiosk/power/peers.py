"""
The masters of masters that share the schedule engine must share its database.

A standby runs the ``kiosk_scheduler`` engine beside the leader, and the lease
in the database decides which one executes. A standby pointed at another
database (a typo in ``kiosk:db``, or no ``kiosk:db`` at all and so the
embedded SQLite file) would find no lease there, take one, and execute every
transition a second time. So when the engine is given its ``peers`` (the
``master_id`` of every other master of masters, as in the engine's
configuration ``peers: [10.0.0.11]``), it checks at start:

* the database is a server every master can reach: the embedded SQLite file
  is refused, naming ``kiosk:db``;
* it records this master in ``kiosk_meta`` (``engine_node:<master id>``) and
  waits up to ``wait`` seconds (default 60) for at least one peer to have
  done the same in this database at some time (started before, or now). A
  database no peer has ever used is refused, naming ``kiosk_scheduler:peers``
  and ``kiosk:db``. The first time, start the masters of masters within that
  minute of each other (or the leader first).

Bad values of ``peers`` (not a list of non-empty master ids, or naming this
master) are refused at start too.
"""

import logging
import time

import sqlalchemy as sa

from salt_kiosk import clock, validate
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError

log = logging.getLogger(__name__)

NODE_PREFIX = "engine_node:"
DEFAULT_WAIT = 60
MAX_PEERS = 16


def check_list(peers, node):
    """Return ``peers`` as a list of master ids, refusing what is not one (or names ``node``)."""
    if peers in (None, "", []):
        return []
    if isinstance(peers, str):
        peers = [peers]
    if not isinstance(peers, (list, tuple)) or len(peers) > MAX_PEERS:
        raise KioskInputError(
            f"kiosk_scheduler:peers {validate.show(peers)}: expected a list of at most {MAX_PEERS} "
            "master ids (the other masters of masters' master_id)"
        )
    out = []
    for peer in peers:
        if not isinstance(peer, str) or not peer.strip() or len(peer) > 200 or not peer.isprintable():
            raise KioskInputError(
                f"kiosk_scheduler:peers has {validate.show(peer)}: expected master ids (printable text, 1-200 characters)"
            )
        if peer == node:
            raise KioskInputError(
                f"kiosk_scheduler:peers names this master itself ({peer!r}): list only the other masters of masters"
            )
        out.append(peer)
    return out


def _where(kstore):
    return kstore.engine.url.render_as_string(hide_password=True)


def _seen(kstore, peers):
    keys = [NODE_PREFIX + peer for peer in peers]
    with kstore.connect() as conn:
        found = conn.execute(sa.select(schema.meta.c.key).where(schema.meta.c.key.in_(keys))).scalars().all()
    return sorted(key[len(NODE_PREFIX) :] for key in found)


def register(kstore, node, now=None):
    """Record in the database that ``node`` runs the engine on it."""
    key, value = NODE_PREFIX + node, clock.iso(now or clock.utcnow())
    with kstore.begin() as conn:
        if not conn.execute(schema.meta.update().where(schema.meta.c.key == key).values(value=value)).rowcount:
            conn.execute(schema.meta.insert().values(key=key, value=value))


def check(kstore, node, peers, wait=DEFAULT_WAIT, sleep=time.sleep):
    """
    Check that ``kstore`` is the database the ``peers`` use (see the module
    documentation); return the peers seen there. Raises
    :class:`~salt_kiosk.errors.KioskInputError` naming the setting.
    """
    peers = check_list(peers, node)
    if not peers:
        return []
    if kstore.engine.dialect.name == "sqlite":
        raise KioskInputError(
            f"kiosk:db is the embedded SQLite file {kstore.engine.url.database}, which no other master of masters "
            f"can share, but kiosk_scheduler:peers lists {peers}: give every master of masters the same server "
            "database in kiosk:db"
        )
    register(kstore, node)
    deadline = time.monotonic() + max(0, wait)
    while True:
        seen = _seen(kstore, peers)
        if seen:
            return seen
        if time.monotonic() >= deadline:
            raise KioskInputError(
                f"kiosk_scheduler:peers {peers}: none of them has ever run the engine on the database "
                f"{_where(kstore)} (kiosk:db); a standby must use the same kiosk:db as the master of masters it "
                "stands by for (the first time, start them within a minute of each other)"
            )
        log.info("kiosk_scheduler: waiting for a peer among %s to appear in %s", peers, _where(kstore))
        sleep(1)
