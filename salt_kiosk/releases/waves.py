"""
Rolling a release out in waves that stop themselves.

``kiosk_release.rollout VERSION target='*' waves='[1, "10%", "50%", "100%"]'
max_failed='5%' per_relay=10`` (and the same arguments on ``publish``):

- ``waves``: how far each wave reaches, as a kiosk count or a share of the
  target, cumulative (``[1, "10%", "100%"]``: one kiosk, then up to a tenth of
  the target, then every kiosk). Entries must grow; a share above 100% is
  refused. A last wave short of the whole target is followed by one that
  completes it. Waves that come out empty on a small target are skipped.
  Default: one wave, ``["100%"]``.
- Wave members are spread across campuses (taken from each campus in turn)
  and, within a campus, over its relays (see below).
- ``per_relay``: at most this many kiosks fetch from one relay at a time,
  because a Raspberry Pi serves the files. Each kiosk is told which of its
  relays to fetch from (``kiosk_release.installed relay=``): the relays it
  lists as masters that answered for its campus, the least loaded first.
  Default: no limit.
- After each wave its results are counted: installed (or already there),
  install error (md5 mismatch, refused archive, ...), rolled back by the health
  gate, no answer. Failures are install errors and rollbacks; a kiosk that
  does not answer is not one (kiosks are off at night; it installs at its
  next start once the rollout is done). When failures exceed ``max_failed``
  (``"5%"``, of the wave's kiosks that answered; default ``"100%"``: never)
  the rollout halts, fires ``kiosk/release/halted`` and touches no further
  kiosk.

The state of every rollout lives in the database (``kiosk_rollouts``,
``kiosk_rollout_kiosks``): each kiosk is marked ``sending`` before its install
is published. A wave that cannot be published (the master of masters is down)
halts the rollout. ``resume`` continues a halted rollout, or one whose driver
died (``running``, and its ``salt-run`` process on this host is gone or it was
silent for :data:`STALE_SECONDS`), from its current wave; it
first asks that wave's kiosks which release they run, so nothing is re-run
blindly: a kiosk already on the version counts as installed without being sent
anything. ``abort`` stops a rollout, optionally putting the release each kiosk
ran before back on the kiosks it installed on.

Only one rollout may be running or halted at a time. Only a rollout of
``'*'`` that is done moves the relays' ``latest.json`` (what kiosks install at
power-on).
"""

import logging
import math
import os
import re
import socket

import sqlalchemy as sa

from salt_kiosk import clock, fanout, inventory, validate
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError, KioskPublishError
from salt_kiosk.node.release_install import check_version
from salt_kiosk.power import actions as kpower
from salt_kiosk.releases import catalogue, rollout, stage

log = logging.getLogger(__name__)

RUNNING, HALTED, ABORTED, DONE = "running", "halted", "aborted", "done"

ACTIVE = (RUNNING, HALTED)

#: Per kiosk.
PENDING, SENDING, INSTALLED, UNCHANGED, FAILED, ROLLED_BACK, ABSENT, REVERTED = (
    "pending",
    "sending",
    "installed",
    "unchanged",
    "failed",
    "rolled_back",
    "absent",
    "reverted",
)

#: A running rollout whose driver made no progress for this long was
#: interrupted (its master died): ``resume`` may take it over.
STALE_SECONDS = 900

MAX_WAVES = 20

MAX_PER_RELAY = 1000

HALTED_TAG = "kiosk/release/halted"

DONE_TAG = "kiosk/release/rollout_done"

DEFAULT_WAVES = ["100%"]

_PERCENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")

_WAVES_ACCEPTED = 'a list of kiosk counts or shares that grow, e.g. [1, "10%", "50%", "100%"]'


def _share(text):
    match = _PERCENT.match(text) if isinstance(text, str) else None
    return float(match.group(1)) if match else None


def parse_waves(value):
    """
    The checked waves (a list of ints and ``"N%"`` strings), from a list or a
    comma-separated string; default ``["100%"]``.
    """
    if value is None:
        return list(DEFAULT_WAVES)
    if isinstance(value, str):
        value = [part.strip() for part in value.strip().strip("[]").split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise KioskInputError(f"waves {validate.show(value)} is not a list of waves (accepted: {_WAVES_ACCEPTED})")
    if len(value) > MAX_WAVES:
        raise KioskInputError(f"waves has {len(value)} entries (accepted: at most {MAX_WAVES})")
    waves, last_count, last_share = [], 0, 0.0
    for index, entry in enumerate(value):
        share = _share(entry)
        if share is not None:
            if not 0 < share <= 100:
                raise KioskInputError(
                    f"waves[{index}] {validate.show(entry)} is not a share from above 0% to 100% "
                    f"(accepted: {_WAVES_ACCEPTED})"
                )
            if share <= last_share:
                raise KioskInputError(
                    f"waves[{index}] {validate.show(entry)} does not grow from the wave before "
                    f"({last_share:g}%) (accepted: {_WAVES_ACCEPTED})"
                )
            last_share = share
            waves.append(f"{share:g}%")
            continue
        if isinstance(entry, str) and entry.strip().isdigit():
            entry = int(entry.strip())
        if not isinstance(entry, int) or isinstance(entry, bool) or entry < 1:
            raise KioskInputError(
                f"waves[{index}] {validate.show(entry)} is not a kiosk count (1 or more) or a share such as "
                f'"10%" (accepted: {_WAVES_ACCEPTED})'
            )
        if entry <= last_count:
            raise KioskInputError(
                f"waves[{index}] {entry} does not grow from the wave before ({last_count}) "
                f"(accepted: {_WAVES_ACCEPTED})"
            )
        last_count = entry
        waves.append(entry)
    return waves


def parse_max_failed(value):
    """``max_failed`` as a percentage 0-100 (``"5%"`` or ``5``); default 100 (never halt)."""
    if value is None:
        return 100.0
    share = _share(value) if isinstance(value, str) else None
    if share is None and isinstance(value, (int, float)) and not isinstance(value, bool):
        share = float(value)
    if share is None or not 0 <= share <= 100 or math.isnan(share):
        raise KioskInputError(
            f"max_failed {validate.show(value)} is not a share from 0% to 100% (accepted: e.g. '5%' or 5)"
        )
    return share


def parse_per_relay(value):
    """``per_relay`` as an int from 1 (None: no limit)."""
    if value is None:
        return None
    return validate.whole_number(
        value, "per_relay", 1, MAX_PER_RELAY, accepted=f"a whole number of kiosks from 1 to {MAX_PER_RELAY}"
    )


def wave_sizes(waves, total):
    """The number of kiosks in each wave for a target of ``total`` kiosks (empty waves dropped)."""
    sizes, reached = [], 0
    for entry in waves:
        if isinstance(entry, int):
            cumulative = min(entry, total)
        else:
            cumulative = min(total, math.ceil(total * _share(entry) / 100))
        if cumulative > reached:
            sizes.append(cumulative - reached)
            reached = cumulative
    if reached < total:
        sizes.append(total - reached)
    return sizes


def spread(kiosks):
    """The kiosks in the order waves take them: one from each campus in turn (each campus by code)."""
    by_campus = inventory.by_campus(sorted(kiosks, key=lambda k: (k["campus"], k["code"])))
    queues = [list(group) for _campus, group in sorted(by_campus.items())]
    order = []
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    return order


def plan(kiosks, waves):
    """``[[kiosk, ...], ...]``: the members of each wave."""
    ordered = spread(kiosks)
    members, start = [], 0
    for size in wave_sizes(waves, len(ordered)):
        members.append(ordered[start : start + size])
        start += size
    return members


#: Characters of a kiosk's reason kept per kiosk (its state comment; the kiosk wrote it).
REASON_CAP = 4000

_ADDRESS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-\[\]]{0,252}$")


def _address(value):
    """A relay address a kiosk reported, when it looks like one (a kiosk's answer is not trusted)."""
    return value if isinstance(value, str) and _ADDRESS.match(value) else None


def _version(value):
    try:
        return check_version(value) if value is not None else None
    except KioskInputError:
        return None


def _reason(text):
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= REASON_CAP else text[:REASON_CAP] + f"... ({len(text)} characters)"


def assign_relays(answers, campus_of):
    """
    ``{minion: relay address or None}``: each kiosk fetches from one of the
    relays it lists (``masters``) that answered for its campus (``via`` of any
    kiosk there), the least loaded first; None when it told nothing (an older
    kiosk: it fetches from the relay the job came through).
    """
    live = {}
    for minion, info in answers.items():
        if _address(info.get("via")):
            live.setdefault(campus_of[minion], set()).add(info["via"])
    load, assigned = {}, {}
    for minion in sorted(answers):
        info = answers[minion]
        masters = info.get("masters") if isinstance(info.get("masters"), list) else []
        candidates = [m for m in masters if _address(m) and m in live.get(campus_of[minion], ())]
        if not candidates:
            assigned[minion] = _address(info.get("via"))
            continue
        choice = min(candidates, key=lambda m: (load.get(m, 0), candidates.index(m)))
        load[choice] = load.get(choice, 0) + 1
        assigned[minion] = choice
    return assigned


def rounds(assigned, per_relay):
    """
    Split ``{minion: relay}`` into rounds ``[{relay: [minion, ...]}, ...]``
    with at most ``per_relay`` kiosks of one relay in a round.
    """
    queues = {}
    for minion in sorted(assigned):
        queues.setdefault(assigned[minion], []).append(minion)
    result = []
    while any(queues.values()):
        batch = {}
        for relay, queue in queues.items():
            if queue:
                take = len(queue) if per_relay is None else per_relay
                batch[relay], queues[relay] = queue[:take], queue[take:]
        result.append(batch)
    return result


# -- the database ---------------------------------------------------------------


def _now():
    return clock.utcnow()


def _rollout_row(conn, rollout_id):
    row = conn.execute(sa.select(schema.rollouts).where(schema.rollouts.c.id == rollout_id)).one_or_none()
    if row is None:
        raise KioskInputError(f"rollout {validate.show(rollout_id)} does not exist")
    return row


def _set_rollout(kstore, rollout_id, **values):
    values["updated_at"] = _now()
    with kstore.begin() as conn:
        conn.execute(schema.rollouts.update().where(schema.rollouts.c.id == rollout_id).values(**values))


def _set_kiosks(kstore, rollout_id, minions, status, reason=None, **values):
    if not minions:
        return
    table = schema.rollout_kiosks
    with kstore.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.rollout_id == rollout_id)
            .where(table.c.minion_id.in_(list(minions)))
            .values(status=status, reason=reason, updated_at=_now(), **values)
        )


def _kiosk_rows(kstore, rollout_id, wave=None):
    table = schema.rollout_kiosks
    query = sa.select(table).where(table.c.rollout_id == rollout_id).order_by(table.c.wave, table.c.minion_id)
    if wave is not None:
        query = query.where(table.c.wave == wave)
    with kstore.connect() as conn:
        return conn.execute(query).all()


def active_rollout(kstore):
    """The rollout that is running or halted, or None."""
    with kstore.connect() as conn:
        return conn.execute(
            sa.select(schema.rollouts)
            .where(schema.rollouts.c.status.in_(ACTIVE))
            .order_by(schema.rollouts.c.id.desc())
            .limit(1)
        ).one_or_none()


def describe(kstore, rollout_id):
    """A rollout as ``status`` shows it: its settings, waves (done / in progress / pending) and kiosks."""
    with kstore.connect() as conn:
        row = _rollout_row(conn, rollout_id)
    kiosks = _kiosk_rows(kstore, rollout_id)
    waves = []
    for index, size in enumerate(row.wave_sizes):
        members = [k for k in kiosks if k.wave == index]
        if row.status == DONE or index < row.wave:
            state = "done"
        elif index == row.wave:
            state = {RUNNING: "in progress", HALTED: "halted", ABORTED: "aborted"}.get(row.status, row.status)
        else:
            state = "pending"
        counts = {}
        for kiosk in members:
            counts[kiosk.status] = counts.get(kiosk.status, 0) + 1
        waves.append({"wave": index + 1, "size": size, "state": state, "counts": counts})
    return {
        "id": row.id,
        "version": row.version,
        "target": row.target,
        "status": row.status,
        "wave": min(row.wave + 1, len(row.wave_sizes)),
        "waves_spec": row.waves_spec,
        "max_failed": f"{row.max_failed:g}%",
        "per_relay": row.per_relay,
        "reason": row.reason,
        "user": row.username,
        "created": clock.iso(row.created_at),
        "updated": clock.iso(row.updated_at),
        "waves": waves,
        "kiosks": {
            k.minion_id: {"wave": k.wave + 1, "status": k.status, "reason": k.reason, "relay": k.relay} for k in kiosks
        },
    }


def recent(kstore, limit=5):
    """The newest ``limit`` rollouts, described."""
    with kstore.connect() as conn:
        ids = (
            conn.execute(sa.select(schema.rollouts.c.id).order_by(schema.rollouts.c.id.desc()).limit(limit))
            .scalars()
            .all()
        )
    return [describe(kstore, rid) for rid in ids]


# -- driving a rollout -----------------------------------------------------------------------


MAX_TIMEOUT = 86400


def check_timeout(timeout):
    """Seconds to wait for the kiosks of one round (default 300)."""
    if timeout is None:
        return 300
    return validate.whole_number(timeout, "timeout", 1, MAX_TIMEOUT, accepted=f"whole seconds from 1 to {MAX_TIMEOUT}")


def _holder():
    """Who drives a rollout: ``host:pid`` of the process running the runner."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _driver_gone(holder):
    """True when ``holder`` is a process of this host that no longer runs (its salt-run died)."""
    host, _sep, pid = str(holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _noop(_data):
    return None


def check_start(kstore, target="*", waves=None, max_failed=None, per_relay=None, timeout=None):
    """
    Check a rollout's arguments and that no other rollout is running or
    halted; return them parsed with the target's ``kiosks``. What publish
    calls before it records anything.
    """
    settings = {
        "waves": parse_waves(waves),
        "max_failed": parse_max_failed(max_failed),
        "per_relay": parse_per_relay(per_relay),
        "timeout": check_timeout(timeout),
        "kiosks": kpower.resolve_kiosks(kstore, target),
    }
    busy = active_rollout(kstore)
    if busy is not None:
        raise KioskInputError(
            f"rollout {busy.id} of {busy.version} is {busy.status}: resume it (kiosk_release.resume) or abort it "
            "(kiosk_release.abort) before starting another; nothing was started"
        )
    return settings


def start(
    opts,
    kstore,
    release,
    target="*",
    waves=None,
    max_failed=None,
    per_relay=None,
    timeout=300,
    user="unknown",
    progress=None,
    fire=None,
):
    """
    Record a rollout of ``release`` to the kiosks of ``target`` and drive it
    wave by wave (see the module documentation); return :func:`describe`'s
    view of it with the kiosks' outcomes (``installed``, ``unchanged``,
    ``failed``, ``rolled_back``, ``absent``) and ``promoted_on``.
    Every argument is checked before anything is recorded or sent.
    """
    settings = check_start(kstore, target, waves, max_failed, per_relay, timeout)
    waves, max_failed, per_relay, timeout = (settings[k] for k in ("waves", "max_failed", "per_relay", "timeout"))
    members = plan(settings["kiosks"], waves)
    now = _now()
    with kstore.begin() as conn:
        rollout_id = conn.execute(
            schema.rollouts.insert().values(
                version=release["version"],
                target=target,
                waves_spec=list(waves),
                wave_sizes=[len(m) for m in members],
                max_failed=max_failed,
                per_relay=per_relay,
                status=RUNNING,
                wave=0,
                username=str(user),
                holder=_holder(),
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        rows = [
            {
                "rollout_id": rollout_id,
                "minion_id": kiosk["minion_id"],
                "wave": index,
                "campus": kiosk["campus"],
                "status": PENDING,
                "updated_at": now,
            }
            for index, group in enumerate(members)
            for kiosk in group
        ]
        if rows:
            conn.execute(schema.rollout_kiosks.insert(), rows)
    return drive(opts, kstore, rollout_id, timeout=timeout, progress=progress, fire=fire)


def _chosen(kstore, rollout_id, none_active):
    """Rollout ``rollout_id``, or the active one (``none_active``: the error when there is none)."""
    if rollout_id is None:
        row = active_rollout(kstore)
        if row is None:
            raise KioskInputError(none_active)
        return row
    rollout_id = validate.whole_number(rollout_id, "rollout", 1, validate.MAX_WHOLE, accepted="a rollout id")
    with kstore.connect() as conn:
        return _rollout_row(conn, rollout_id)


def resume(opts, kstore, rollout_id=None, timeout=300, progress=None, fire=None):
    """
    Continue a halted rollout (default: the one running or halted), or one
    whose master died mid-way, from its current wave. Anything else is
    refused naming its state; nothing is started then.
    """
    row = _chosen(kstore, rollout_id, "no rollout is halted (accepted: a halted rollout); nothing was started")
    stale = (_now() - row.updated_at).total_seconds() > STALE_SECONDS or _driver_gone(row.holder)
    timeout = check_timeout(timeout)
    if row.status != HALTED and not (row.status == RUNNING and stale):
        what = "running (its master is driving it)" if row.status == RUNNING else row.status
        raise KioskInputError(
            f"rollout {row.id} of {row.version} is {what}, not halted (accepted: a halted rollout, or a running "
            f"one silent for {STALE_SECONDS} s); nothing was started"
        )
    _set_rollout(kstore, row.id, status=RUNNING, reason=None, holder=_holder())
    return drive(opts, kstore, row.id, timeout=timeout, progress=progress, fire=fire)


def drive(opts, kstore, rollout_id, timeout=300, progress=None, fire=None):
    """Run the waves of rollout ``rollout_id`` from its current one until it is done or halts."""
    progress = progress or _noop
    with kstore.connect() as conn:
        row = _rollout_row(conn, rollout_id)
    release = catalogue.find_release(kstore, row.version)
    total = len(row.wave_sizes)
    for index in range(row.wave, total):
        progress({"message": f"rollout {rollout_id} of {row.version}: wave {index + 1}/{total} starting"})
        try:
            counts = _run_wave(opts, kstore, rollout_id, release, index, row.per_relay, timeout, progress)
        except KioskPublishError as exc:
            # Nothing more can go out now (the master cannot publish): halt, resumable at once.
            reason = f"wave {index + 1}/{total}: publishing failed: {exc}"
            _halt(kstore, rollout_id, row, index, total, reason, fire, failed=0, answered=0)
            return _report(kstore, rollout_id)
        answered = counts[INSTALLED] + counts[UNCHANGED] + counts[FAILED] + counts[ROLLED_BACK]
        failures = counts[FAILED] + counts[ROLLED_BACK]
        share = 100.0 * failures / answered if answered else 0.0
        summary = (
            f"wave {index + 1}/{total}: {counts[INSTALLED] + counts[UNCHANGED]} installed, {counts[FAILED]} failed, "
            f"{counts[ROLLED_BACK]} rolled back, {counts[ABSENT]} no answer"
        )
        progress({"message": f"rollout {rollout_id} of {row.version}: {summary}"})
        if failures and share > row.max_failed:
            reason = f"{summary}: failures {share:.0f}% over max_failed {row.max_failed:g}%"
            _halt(kstore, rollout_id, row, index, total, reason, fire, failed=failures, answered=answered)
            return _report(kstore, rollout_id)
        _set_rollout(kstore, rollout_id, wave=index + 1)
    promoted = None
    if row.target == "*":
        newest = catalogue.latest_release(kstore)
        if newest and newest["version"] == row.version:
            try:
                promoted = stage.promote(opts, row.version, timeout=60)
            except KioskPublishError as exc:
                # Every wave is done but latest.json did not move: resume moves it.
                reason = f"every wave is done, but latest.json could not be moved on the relays: {exc}"
                _halt(kstore, rollout_id, row, total, total, reason, fire, failed=0, answered=0)
                return _report(kstore, rollout_id)
    _set_rollout(kstore, rollout_id, status=DONE, wave=total)
    report = _report(kstore, rollout_id)
    if promoted is not None:
        report["promoted_on"] = promoted
    if fire is not None:
        fire({"rollout": rollout_id, "version": row.version}, DONE_TAG)
    return report


def _halt(kstore, rollout_id, row, index, total, reason, fire, failed, answered):
    _set_rollout(kstore, rollout_id, status=HALTED, wave=index, reason=reason)
    log.warning("kiosk release: rollout %s of %s halted: %s", rollout_id, row.version, reason)
    if fire is not None:
        fire(
            {
                "rollout": rollout_id,
                "version": row.version,
                "wave": index + 1,
                "waves": total,
                "failed": failed,
                "answered": answered,
                "max_failed": f"{row.max_failed:g}%",
                "reason": reason,
            },
            HALTED_TAG,
        )


def _report(kstore, rollout_id):
    report = describe(kstore, rollout_id)
    report.update(installed=[], unchanged=[], failed={}, rolled_back={}, absent=[])
    for minion, kiosk in report["kiosks"].items():
        if kiosk["status"] in (INSTALLED, UNCHANGED):
            report[kiosk["status"]].append(minion)
        elif kiosk["status"] in (FAILED, ROLLED_BACK):
            report[kiosk["status"]][minion] = kiosk["reason"]
        elif kiosk["status"] == ABSENT:
            report["absent"].append(minion)
    return report


def _ask(opts, minions, timeout):
    """``{minion: kiosk.release answer}`` of the kiosks that answered."""
    if not minions:
        return {}
    answers = fanout.run_jobs(opts, {"ask": {"tgt": sorted(minions), "fun": "kiosk.release"}}, min(timeout, 60))
    return {
        minion: answer["ret"]
        for minion, answer in answers.get("ask", {}).items()
        if not fanout.failed(answer) and isinstance(answer["ret"], dict)
    }


def _run_wave(opts, kstore, rollout_id, release, index, per_relay, timeout, progress):
    """Install on the kiosks of wave ``index`` that do not have the release yet; return the counts per status."""
    rows = _kiosk_rows(kstore, rollout_id, wave=index)
    todo = [r for r in rows if r.status not in (INSTALLED, UNCHANGED)]
    campus_of = {r.minion_id: r.campus for r in rows}
    # First ask: a kiosk may have the release already (an interrupted wave), or be off.
    answers = _ask(opts, [r.minion_id for r in todo], timeout)
    absent = [r.minion_id for r in todo if r.minion_id not in answers]
    _set_kiosks(kstore, rollout_id, absent, ABSENT, "no answer")
    there, send = [], {}
    for minion, info in answers.items():
        if info.get("version") == release["version"] and info.get("md5") == release["md5"]:
            there.append(minion)
        else:
            send[minion] = info
    _set_kiosks(kstore, rollout_id, there, UNCHANGED, None)
    for minion, info in send.items():
        _set_kiosks(kstore, rollout_id, [minion], PENDING, None, previous=_version(info.get("version")))
    assigned = assign_relays(send, campus_of)
    batches = rounds(assigned, per_relay)
    for number, batch in enumerate(batches, start=1):
        jobs = {}
        for relay, minions in batch.items():
            kwarg = {"md5": release["md5"], "filename": release["file"]}
            if release.get("health"):
                kwarg["health"] = release["health"]
            if relay:
                kwarg["relay"] = relay
            jobs[relay or "-"] = {
                "tgt": minions,
                "fun": "state.single",
                "arg": ["kiosk_release.installed", release["version"]],
                "kwarg": kwarg,
            }
            _set_kiosks(kstore, rollout_id, minions, SENDING, None, relay=relay)
        answers = fanout.run_jobs(opts, jobs, timeout)
        for key, job in jobs.items():
            for minion in job["tgt"]:
                answer = answers.get(key, {}).get(minion)
                _record(kstore, rollout_id, release, minion, answer)
        _set_rollout(kstore, rollout_id)  # progress made: not stale
        if len(batches) > 1:
            progress(
                {
                    "message": f"rollout {rollout_id}: wave {index + 1}, round {number}/{len(batches)} done "
                    f"({', '.join(f'{relay}: {len(m)}' for relay, m in batch.items())})"
                }
            )
    counts = dict.fromkeys((INSTALLED, UNCHANGED, FAILED, ROLLED_BACK, ABSENT, PENDING, SENDING), 0)
    for row in _kiosk_rows(kstore, rollout_id, wave=index):
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def _record(kstore, rollout_id, release, minion, answer):
    if answer is None:
        _set_kiosks(kstore, rollout_id, [minion], ABSENT, "no answer")
        return
    outcome = rollout.install_outcome(answer)
    status = {"installed": INSTALLED, "unchanged": UNCHANGED, "failed": FAILED, "rolled_back": ROLLED_BACK}[
        outcome["status"]
    ]
    _set_kiosks(kstore, rollout_id, [minion], status, _reason(outcome["reason"]))
    rollout.record_outcome(kstore, release, minion, outcome)


def abort(opts, kstore, rollout_id=None, rollback=False, timeout=300):
    """
    Stop a running or halted rollout (default: the active one). With
    ``rollback`` the kiosks it installed on get the release they ran before
    (when it is in the catalogue), recorded ``reverted``.
    """
    row = _chosen(kstore, rollout_id, "no rollout is running or halted; nothing to abort")
    if row.status not in ACTIVE:
        raise KioskInputError(
            f"rollout {row.id} of {row.version} is {row.status} (accepted: a running or halted rollout); nothing done"
        )
    _set_rollout(kstore, row.id, status=ABORTED, reason=f"aborted at wave {row.wave + 1}")
    report = {"rollout": row.id, "version": row.version, "status": ABORTED, "reverted": [], "not_reverted": {}}
    if rollback:
        done = [k for k in _kiosk_rows(kstore, row.id) if k.status == INSTALLED]
        by_previous = {}
        for kiosk in done:
            by_previous.setdefault(kiosk.previous, []).append(kiosk.minion_id)
        for previous, minions in sorted(by_previous.items(), key=lambda item: str(item[0])):
            old = catalogue.get_release(kstore, previous) if previous else None
            if old is None:
                for minion in minions:
                    report["not_reverted"][minion] = f"its previous release {previous!r} is not in the catalogue"
                continue
            kwarg = {"md5": old["md5"], "filename": old["file"]}
            if old.get("health"):
                kwarg["health"] = old["health"]
            job = {"tgt": minions, "fun": "state.single", "arg": ["kiosk_release.installed", old["version"]]}
            job["kwarg"] = kwarg
            answers = fanout.run_jobs(opts, {"revert": job}, timeout).get("revert", {})
            for minion in minions:
                answer = answers.get(minion)
                outcome = rollout.install_outcome(answer) if answer is not None else None
                if outcome and outcome["status"] in ("installed", "unchanged"):
                    report["reverted"].append(minion)
                    _set_kiosks(kstore, row.id, [minion], REVERTED, f"back on {old['version']}")
                    rollout.record_outcome(kstore, old, minion, outcome)
                else:
                    report["not_reverted"][minion] = outcome["reason"] if outcome else "no answer"
    return report
