"""
The power schedule engine: APScheduler with its job store in the kiosk
database.

The engine materialises the upcoming transitions of every kiosk (see
:mod:`salt_kiosk.schedule`) as APScheduler date jobs, one per (instant, new
state, deciding rule), and executes each through :func:`salt_kiosk.power.wake`
or :func:`salt_kiosk.power.shutdown` for the kiosks it concerns. It re-plans
when rules or the inventory change and, as a safety net, whenever the rule or
inventory revision in the database moved or the plan is older than
``replan_interval``.

Exactly once: every executed or missed transition is claimed per kiosk in
``kiosk_schedule_runs`` (primary key: instant + kiosk) before anything is sent,
so a job that fires again after a restart, or that both the catch-up and
APScheduler see, does nothing the second time. At start the engine looks at the
transitions between its last recorded tick and now: those late by at most
``grace`` seconds run once, older ones are recorded as ``missed``.

After each executed transition the verification sweeps of its power event are
scheduled at ``sweep_delays`` seconds; each calls the sweep hook.
"""

import datetime
import logging
import threading

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.jobstores.base import JobLookupError
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import IntegrityError

from salt_kiosk import config, fanout, inventory, power, rules, schedule
from salt_kiosk import store as kstore_mod

log = logging.getLogger(__name__)

UTC = datetime.timezone.utc
JOBSTORE_TABLE = "kiosk_apscheduler_jobs"
POWER_PREFIX = "kiosk-power:"
SWEEP_PREFIX = "kiosk-sweep:"
TICK_JOB = "kiosk-engine-tick"

#: The running engines, by key: APScheduler persists references to the
#: module-level job functions below, which find their engine here.
_ACTIVE = {}


def run_transition(key, at, state, rule, minions):
    """APScheduler job: execute one transition."""
    _ACTIVE[key].execute(datetime.datetime.fromisoformat(at), state, rule, minions)


def run_sweep(key, event_id, index, final):
    """APScheduler job: one verification sweep of a power event."""
    _ACTIVE[key].sweep(event_id, index, final)


def run_tick(key):
    """APScheduler job: the engine's heartbeat."""
    _ACTIVE[key].tick()


def _utcnow():
    return datetime.datetime.now(UTC)


def _naive(moment):
    return moment.astimezone(UTC).replace(tzinfo=None)


def _get_meta(conn, key):
    return conn.execute(sa.select(kstore_mod.meta.c.value).where(kstore_mod.meta.c.key == key)).scalar()


def _set_meta(conn, key, value):
    if not conn.execute(kstore_mod.meta.update().where(kstore_mod.meta.c.key == key).values(value=value)).rowcount:
        conn.execute(kstore_mod.meta.insert().values(key=key, value=value))


def default_sweep_hook(engine, event_id, index, final):
    """
    Run verification sweep ``index`` of a power event (see :mod:`salt_kiosk.verify`);
    announce it on the master bus as ``kiosk/power/sweep`` with its counts.
    """
    from salt_kiosk import verify  # pylint: disable=import-outside-toplevel

    try:
        summary = verify.verify(engine.kstore, engine.opts, event_id, sweep=index, final=final,
                                fire=engine.fire, publish=engine.publish)
    except Exception as exc:  # pylint: disable=broad-except
        log.error("kiosk_scheduler: sweep %s of power event %s failed: %s", index, event_id, exc)
        engine.fire({"event": event_id, "sweep": index, "final": final, "error": str(exc)}, "kiosk/power/sweep")
        return
    engine.fire({"event": event_id, "sweep": index, "final": final, "ok": summary["ok"],
                 "wrong": summary["wrong"]}, "kiosk/power/sweep")


class Engine:
    """One scheduler engine over the kiosk database configured in ``opts``."""

    def __init__(self, opts, grace=600, horizon_hours=48, tick=30, replan_interval=3600,
                 sweep_delays=(300, 600, 900), shutdown_delay=60, publish=fanout.run_jobs, fire=None,
                 sweep_hook=default_sweep_hook, clock=_utcnow, key="kiosk"):
        self.opts = opts
        self.grace = int(grace)
        self.horizon = datetime.timedelta(hours=float(horizon_hours))
        self.tick_seconds = float(tick)
        self.replan_interval = datetime.timedelta(seconds=float(replan_interval))
        self.sweep_delays = [float(d) for d in sweep_delays]
        self.shutdown_delay = int(shutdown_delay)
        self.publish = publish
        self._fire = fire
        self.sweep_hook = sweep_hook
        self.clock = clock
        self.key = key
        self.kstore = None
        self.scheduler = None
        self._plan_lock = threading.Lock()
        self._planned = None
        self._last_plan = None

    # -- lifecycle -------------------------------------------------------

    def start(self):
        """Open the store, catch up on missed transitions, plan and start APScheduler."""
        from salt_kiosk import store  # pylint: disable=import-outside-toplevel

        self.kstore = store.open_store(self.opts)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.kstore.engine, tablename=JOBSTORE_TABLE)},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": self.grace},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        _ACTIVE[self.key] = self
        with self.kstore.begin() as conn:
            _set_meta(conn, "engine_started_at", _naive(self.clock()).isoformat())
        # Catch up to ``now``, re-plan from that same instant while APScheduler is
        # paused (so that jobs persisted before a rule change never run), then go.
        now = self.clock()
        self.catch_up(now)
        self.scheduler.start(paused=True)
        self.replan("start", since=now)
        self.scheduler.add_job(run_tick, "interval", seconds=self.tick_seconds, id=TICK_JOB, args=[self.key],
                               replace_existing=True, misfire_grace_time=None)
        self.tick()
        self.scheduler.resume()
        log.info("kiosk_scheduler started (grace %ss, horizon %s)", self.grace, self.horizon)

    def stop(self):
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        _ACTIVE.pop(self.key, None)

    def fire(self, data, tag):
        if self._fire is not None:
            self._fire(data, tag)

    # -- planning --------------------------------------------------------

    def _revisions(self, conn):
        return (_get_meta(conn, "rules_revision") or "0", _get_meta(conn, "inventory_revision") or "0")

    def desired_jobs(self, since, until):
        """``{job id: (at, state, rule, [minions])}`` for transitions in (since, until]."""
        kiosks = inventory.list_kiosks(self.kstore, "*")
        computed = schedule.compute(
            kiosks, self.kstore.campus_rows(), rules.load(self.kstore), config.default_state(self.opts),
            since=since, until=until, now=since,
        )
        jobs = {}
        for minion, (_campus, _tz, segments) in computed.items():
            for at, state, rule in schedule.transitions(segments):
                if at <= since:
                    continue
                job_id = f"{POWER_PREFIX}{_naive(at).isoformat()}:{state}:{rule or '-'}"
                jobs.setdefault(job_id, (at, state, rule, []))[3].append(minion)
        for spec in jobs.values():
            spec[3].sort()
        return jobs

    def replan(self, reason="tick", since=None):
        """
        Bring the scheduled transition jobs in line with rules and inventory,
        for transitions after ``since`` (default now).
        """
        with self._plan_lock:
            now = self.clock()
            since = since or now
            with self.kstore.connect() as conn:
                revisions = self._revisions(conn)
            desired = self.desired_jobs(since, now + self.horizon)
            existing = {job.id: job for job in self.scheduler.get_jobs() if job.id.startswith(POWER_PREFIX)}
            removed = added = 0
            for job_id, job in existing.items():
                if job_id not in desired:
                    try:
                        job.remove()
                    except JobLookupError:  # it ran or was dropped meanwhile
                        pass
                    removed += 1
            for job_id, (at, state, rule, minions) in desired.items():
                args = [self.key, at.isoformat(), state, rule, minions]
                if job_id in existing and list(existing[job_id].args) == args:
                    continue
                self.scheduler.add_job(run_transition, "date", run_date=at, id=job_id, args=args, replace_existing=True)
                added += 1
            self._planned = revisions
            self._last_plan = now
            with self.kstore.begin() as conn:
                _set_meta(conn, "engine_last_plan", _naive(now).isoformat())
            log.info("kiosk_scheduler re-planned (%s): %d transition jobs, %d added/changed, %d removed",
                     reason, len(desired), added, removed)
            return {"jobs": len(desired), "added": added, "removed": removed}

    def catch_up(self, now=None):
        """
        Run (within grace) or record as missed the transitions since the last
        tick, up to ``now``. After a very long outage only the last
        ``schedule.MAX_SPAN`` is looked at.
        """
        with self.kstore.connect() as conn:
            last = _get_meta(conn, "engine_last_tick")
        if not last:
            return []
        now = now or self.clock()
        since = datetime.datetime.fromisoformat(last).replace(tzinfo=UTC) - datetime.timedelta(seconds=60)
        oldest = now - schedule.MAX_SPAN + datetime.timedelta(minutes=1)
        if since < oldest:
            log.warning("kiosk_scheduler: down since %s; transitions before %s are not looked at", since, oldest)
            since = oldest
        if since >= now:
            return []
        handled = []
        for _job_id, (at, state, rule, minions) in sorted(self.desired_jobs(since, now).items()):
            if at <= now:
                handled.append(self.execute(at, state, rule, minions))
        return handled

    def tick(self):
        """Heartbeat: record the tick; re-plan when revisions moved or the plan is old."""
        now = self.clock()
        with self.kstore.begin() as conn:
            _set_meta(conn, "engine_last_tick", _naive(now).isoformat())
            revisions = self._revisions(conn)
        if revisions != self._planned or self._last_plan is None or now - self._last_plan >= self.replan_interval:
            self.replan("revision changed" if revisions != self._planned else "interval")

    # -- execution -------------------------------------------------------

    def _claim(self, at, state, rule, minions, status):
        """Insert one run row per kiosk; return the kiosks this call owns."""
        claimed = []
        naive_at = _naive(at)
        for minion in minions:
            try:
                with self.kstore.begin() as conn:
                    conn.execute(kstore_mod.schedule_runs.insert().values(
                        at=naive_at, minion_id=minion, state=state, rule=rule, status=status,
                        recorded_at=_naive(self.clock()),
                    ))
                claimed.append(minion)
            except IntegrityError:
                continue
        return claimed

    def execute(self, at, state, rule, minions):
        """Execute (or record as missed) one transition for ``minions``, at most once per kiosk."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        late = (self.clock() - at).total_seconds()
        status = "missed" if late > self.grace else "running"
        claimed = self._claim(at, state, rule, minions, status)
        outcome = {"at": at.isoformat(), "state": state, "rule": rule, "kiosks": claimed, "status": status}
        if not claimed:
            outcome["status"] = "already handled"
            return outcome
        if status == "missed":
            log.warning("kiosk_scheduler: transition %s -> %s (%s) missed by %ds for %s", at, state, rule, late, claimed)
            self.fire({"at": at.isoformat(), "state": state, "rule": rule, "kiosks": claimed, "late": int(late)},
                      "kiosk/power/missed")
            return outcome
        target = f"schedule:{rule or 'default'}"
        try:
            if state == "on":
                result = power.wake(self.kstore, self.opts, target, port=None, user="kiosk_scheduler",
                                    source="schedule", rule=rule, publish=self.publish, minions=claimed)
            else:
                result = power.shutdown(self.kstore, self.opts, target, delay=self.shutdown_delay,
                                        user="kiosk_scheduler", source="schedule", rule=rule,
                                        publish=self.publish, minions=claimed)
        except Exception as exc:  # pylint: disable=broad-except
            log.error("kiosk_scheduler: transition %s -> %s failed: %s", at, state, exc)
            self._finish(at, claimed, "failed", None)
            outcome["status"] = "failed"
            outcome["error"] = str(exc)
            return outcome
        self._finish(at, claimed, "done", result["event"])
        self.fire(
            {"event": result["event"], "target": target, "user": "kiosk_scheduler", "ok": result["ok"],
             "failed": result["failed"], "kiosks": {m: e["ok"] for m, e in result["kiosks"].items()}},
            f"kiosk/power/{result['action']}",
        )
        self.schedule_sweeps(result["event"])
        outcome.update(status="done", event=result["event"])
        return outcome

    def _finish(self, at, minions, status, event_id):
        with self.kstore.begin() as conn:
            conn.execute(
                kstore_mod.schedule_runs.update()
                .where(kstore_mod.schedule_runs.c.at == _naive(at))
                .where(kstore_mod.schedule_runs.c.minion_id.in_(minions))
                .values(status=status, event_id=event_id)
            )

    def schedule_sweeps(self, event_id):
        now = self.clock()
        for index, delay in enumerate(self.sweep_delays, start=1):
            self.scheduler.add_job(
                run_sweep, "date", run_date=now + datetime.timedelta(seconds=delay),
                id=f"{SWEEP_PREFIX}{event_id}:{index}", args=[self.key, event_id, index, index == len(self.sweep_delays)],
                replace_existing=True,
            )

    def sweep(self, event_id, index, final):
        self.sweep_hook(self, event_id, index, final)

    def _on_missed(self, event):
        """APScheduler gave up on a job (engine down for longer than the grace time)."""
        job = self.scheduler.get_job(event.job_id) if self.scheduler else None
        if event.job_id.startswith(POWER_PREFIX):
            _key, at, state, rule, minions = (job.args if job else (None, None, None, None, None))
            if at is None:
                log.warning("kiosk_scheduler: job %s missed", event.job_id)
                return
            self.execute(datetime.datetime.fromisoformat(at), state, rule, minions)


def status(kstore, limit=10):
    """Engine health as stored in the database (works from any process)."""
    with kstore.connect() as conn:
        meta = {key: _get_meta(conn, key) for key in ("engine_started_at", "engine_last_tick", "engine_last_plan",
                                                     "rules_revision", "inventory_revision")}
        counts = dict(conn.execute(
            sa.select(kstore_mod.schedule_runs.c.status, sa.func.count()).group_by(kstore_mod.schedule_runs.c.status)
        ).all())
        missed = conn.execute(
            sa.select(kstore_mod.schedule_runs).where(kstore_mod.schedule_runs.c.status == "missed")
            .order_by(kstore_mod.schedule_runs.c.at.desc()).limit(limit)
        ).all()
        upcoming = []
        if sa.inspect(conn).has_table(JOBSTORE_TABLE):
            jobs = sa.table(JOBSTORE_TABLE, sa.column("id"), sa.column("next_run_time"))
            for row in conn.execute(
                sa.select(jobs.c.id, jobs.c.next_run_time).where(jobs.c.id.like(POWER_PREFIX + "%"))
                .order_by(jobs.c.next_run_time).limit(limit)
            ):
                # kiosk-power:<YYYY-MM-DDTHH:MM:SS>:<state>:<rule, may contain ':'>
                rest = row.id[len(POWER_PREFIX):]
                state, rule = rest[20:].split(":", 1)
                upcoming.append({
                    "at": datetime.datetime.fromtimestamp(row.next_run_time, UTC).isoformat(timespec="seconds"),
                    "state": state, "rule": None if rule == "-" else rule,
                })
    last_tick = meta["engine_last_tick"]
    age = None
    if last_tick:
        age = int((_utcnow() - datetime.datetime.fromisoformat(last_tick).replace(tzinfo=UTC)).total_seconds())
    return {
        "started_at": meta["engine_started_at"],
        "last_tick": last_tick,
        "seconds_since_tick": age,
        "last_plan": meta["engine_last_plan"],
        "rules_revision": int(meta["rules_revision"] or 0),
        "next_transitions": upcoming,
        "executed": counts.get("done", 0),
        "failed": counts.get("failed", 0),
        "missed_count": counts.get("missed", 0),
        "missed": [{"at": r.at.isoformat(), "kiosk": r.minion_id, "state": r.state, "rule": r.rule} for r in missed],
    }
