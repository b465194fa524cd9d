"""
Staging a published release on every relay (hop 1, master side): serve the
file (:mod:`salt_kiosk.releases.serve`), have each relay fetch it
(``kiosk.stage_release``, :mod:`salt_kiosk.node.release_stage`), record each
relay's outcome in ``kiosk_release_stages``; promote a staged version to
``latest`` on every relay.
"""

import logging

from salt_kiosk import clock, fanout
from salt_kiosk.config import campuses as campus_config
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError, KioskPublishError
from salt_kiosk.releases import serve

log = logging.getLogger(__name__)


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


def stage(opts, kstore, release, path, relays=None, timeout=300, latest=False):
    """
    Hop 1: every relay's minion fetches the release file at ``path`` from this
    master over HTTP and checks its md5; ``latest`` also points each relay's
    ``latest.json`` at it. Each relay gets its own job and its own one-time URL
    (:func:`salt_kiosk.releases.serve.serve_file`); the server runs only while
    the relays fetch. Return
    ``{"staged": [...], "failed": {relay: reason}, "silent": [...],
    "served_from": "http://address:port"}`` and record it per relay. A relay
    whose job could not be published or followed (master not running or not
    answering, request refused; see :mod:`salt_kiosk.fanout`) is under
    ``failed`` with that reason, not ``silent``.
    """
    relays = list(relays if relays is not None else all_relays(opts))
    if not relays:
        raise KioskInputError("no relays are configured under kiosk:campuses, so there is nowhere to stage")
    with serve.serve_file(opts, path, relays) as served:
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
                    # Only when set: a relay of an older release knows no health argument.
                    **({"health": release["health"]} if release.get("health") else {}),
                },
            }
            for relay in relays
        }
        unpublished = {}
        try:
            answers = fanout.run_jobs(opts, jobs, timeout)
        except KioskPublishError as exc:
            # Each relay has its own job: record why this one was not sent.
            answers, unpublished = exc.results, exc.failures
    result = {"staged": [], "failed": {}, "silent": [], "served_from": served["address"]}
    outcome = {}
    for relay in relays:
        answer = answers.get(relay, {}).get(relay)
        if relay in unpublished:
            result["failed"][relay] = unpublished[relay]
            outcome[relay] = (False, unpublished[relay])
        elif answer is None:
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


def promote(opts, version, timeout=60):
    """Point every relay's ``latest.json`` at ``version``; return the relays that did."""
    relays = all_relays(opts)
    answers = fanout.run_jobs(
        opts, {"promote": {"tgt": relays, "fun": "kiosk.promote_release", "arg": [version]}}, timeout
    )["promote"]
    done = sorted(r for r, a in answers.items() if not fanout.failed(a) and isinstance(a["ret"], dict))
    if len(done) < len(relays):
        log.warning("release %s: latest.json not updated on %s", version, sorted(set(relays) - set(done)))
    return done
