"""
What each kiosk runs: reads the answers of the ``kiosk_release.installed``
state (hop 2, see :mod:`salt_kiosk.node.release_install`; rollouts in waves
are :mod:`salt_kiosk.releases.waves`) and of ``kiosk.release``, and records
every kiosk's version and last attempt in ``kiosk_release_kiosks``.
"""

import logging

import sqlalchemy as sa

from salt_kiosk import clock, fanout
from salt_kiosk.db import schema
from salt_kiosk.node.release_install import ROLLED_BACK_MARK, version_key
from salt_kiosk.power import actions as kpower
from salt_kiosk.releases import catalogue

log = logging.getLogger(__name__)


def _state_outcome(ret):
    """``(ok, comment)`` from a ``state.single kiosk_release.installed`` return (the comment says why on failure)."""
    if isinstance(ret, dict) and ret:
        chunk = next(iter(ret.values()))
        if isinstance(chunk, dict) and "result" in chunk:
            return bool(chunk["result"]), chunk.get("comment")
    if isinstance(ret, list):
        return False, "; ".join(str(item) for item in ret)
    return False, str(ret)


def record_kiosk(kstore, minion_id, **values):
    """Upsert what is known of ``minion_id``'s release (``kiosk_release_kiosks``), stamped now."""
    table = schema.release_kiosks
    values["seen_at"] = clock.utcnow()
    with kstore.begin() as conn:
        updated = conn.execute(table.update().where(table.c.minion_id == minion_id).values(**values)).rowcount
        if not updated:
            conn.execute(table.insert().values(minion_id=minion_id, **values))


def install_outcome(answer):
    """
    What one kiosk's ``state.single kiosk_release.installed`` answer says:
    ``{"status": "installed" | "unchanged" | "failed" | "rolled_back", "reason"}``
    (``rolled_back``: the release failed its health gate there and the
    previous one is current again).
    """
    ok, comment = _state_outcome(answer["ret"])
    chunk = next(iter(answer["ret"].values())) if isinstance(answer["ret"], dict) and answer["ret"] else {}
    if ok:
        changed = bool(isinstance(chunk, dict) and chunk.get("changes"))
        return {"status": "installed" if changed else "unchanged", "reason": None}
    return {"status": "rolled_back" if ROLLED_BACK_MARK in str(comment) else "failed", "reason": comment}


def record_outcome(kstore, release, minion, outcome):
    """Record ``outcome`` (see :func:`install_outcome`) of ``release`` on ``minion`` in ``kiosk_release_kiosks``."""
    if outcome["status"] in ("installed", "unchanged"):
        record_kiosk(
            kstore,
            minion,
            version=release["version"],
            md5=release["md5"],
            attempted=release["version"],
            ok=True,
            error=None,
            rolled_back=False,
        )
    else:
        record_kiosk(
            kstore,
            minion,
            attempted=release["version"],
            ok=False,
            error=outcome["reason"],
            rolled_back=outcome["status"] == "rolled_back",
        )


def status(opts, kstore, target="*", timeout=30):
    """
    Fleet view: ask every kiosk of ``target`` for its release (``kiosk.release``)
    and report kiosks per version, the ones behind the latest release, failures
    with their reason and the kiosks that did not answer (with their last known
    version).
    """
    kiosks = kpower.resolve_kiosks(kstore, target)
    latest = catalogue.latest_release(kstore)
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
        "rolled_back": {},
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
            rolled_back = failed and bool(attempt.get("rolled_back"))
            if failed:
                report["rolled_back" if rolled_back else "failures"][minion] = {
                    "version": attempt.get("version"),
                    "reason": attempt.get("error"),
                    "at": attempt.get("at"),
                }
            record_kiosk(
                kstore,
                minion,
                version=current,
                md5=info.get("md5"),
                attempted=attempt.get("version"),
                ok=attempt.get("ok"),
                error=attempt.get("error") if failed else None,
                rolled_back=rolled_back,
            )
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
