"""
The power schedule engine: APScheduler with its job store in the kiosk
database.

The engine materialises the upcoming transitions of every kiosk (see
:mod:`salt_kiosk.power.schedule`) as APScheduler date jobs, one per (instant, new
state, deciding rule), and executes each through :func:`salt_kiosk.power.actions.wake`
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

A claim records enough to be settled after a crash. Its ``status`` goes
``claimed`` (inserted with its ``holder``, the engine's master) -> ``sending``
(the Salt job id of the job carrying the kiosk's command, ``jid``, generated
and recorded in one transaction before the publish, which uses it) ->
``done`` (with its power event) or ``failed``; or straight to ``missed``.
Rows of older releases may say ``running``: they are left alone. Whenever an
engine starts leading (after a start, a restart or a takeover) and after a
database outage, it first settles the claims left ``claimed`` or ``sending`` by
an engine that is gone (see :meth:`Engine.recover_claims`), taking each over
with a compare-and-set so exactly one engine settles it:

- ``claimed``: nothing was published; it runs now (``missed`` when later
  than ``grace``);
- ``sending`` and its job went out (the relays' ``kiosk_mysql`` returner
  recorded its load or returns under that jid in ``kiosk_jobs`` /
  ``kiosk_returns``, or this very process published it): it is not sent again;
  its power event is recorded from the returns there are, the claim is
  ``done``;
- ``sending`` and its job left no trace: it was never published; it runs now
  (or is ``missed``).

A deposed leader that resumes cannot publish a claim taken over meanwhile: the
step to ``sending`` only succeeds for the claim's holder. So a master killed in
the middle of a transition and restarted (or replaced by a standby) powers
every kiosk once. One window is left: a job published by a leader that then
hung past its lease, whose load had not reached the database when the new
leader looked (e.g. still in a relay's returner spool), is sent again.

Database outages: a round that fails because the database does not answer
(:data:`DB_DOWN_ERRORS`: a tick, a lease step, a transition, APScheduler's own
job store queries) is logged once, as one warning line without a traceback, when
the outage starts (a reminder every ``OUTAGE_REMINDER`` seconds while it lasts,
details in the debug log) and once when the database answers again; the engine
keeps running. A transition that falls due meanwhile is not lost: its job does
nothing (the outcome is ``deferred``), and the leader's first round that reaches
the database again (a lease step or a tick) catches up from the last recorded
tick before recording a new one: transitions late by at most ``grace`` run once,
later ones are recorded ``missed`` (with ``kiosk/power/missed``). A leader whose
lease expires while the database does not answer steps down; whichever engine
takes the lease afterwards catches up, exactly once thanks to the claims. When
the database fails between the publish and the record of a transition, the
process keeps the returns and the catch-up records them (nothing is sent
again). APScheduler's loop rides the outage out (see :class:`PlainJobStore`).
At start the engine waits for the database instead of failing.

After each executed transition the verification sweeps of its power event are
scheduled at ``sweep_delays`` seconds; each calls the sweep hook.

Leadership: every master of masters may run the engine over the same database;
only the one holding the lease executes. The lease is a row of
``kiosk_engine_leases`` (one per engine key) with its holder (the master's
``master_id`` or ``id``) and an expiry ``lease`` seconds ahead (default 1.5 x
``tick``), renewed every ``tick / 2`` seconds. A standby tries to take it as
often; once the leader's lease has expired it takes over, catches up on what
fell due since the leader's last tick (within ``grace``, exactly once: the
per-kiosk claims) and executes from then on. From the leader's last renewal to
the takeover is at most ``lease + tick / 2`` seconds (2 x ``tick`` with the
default lease). A leader that finds its lease taken steps down (its APScheduler
pauses). A standby still records the sweeps of manual power events into the
shared job store, where the leader runs them. Masters' clocks must agree (NTP):
expiries are compared with each master's own clock.

A renewal never waits for the leader's work. The lease is renewed or taken by a
thread that does nothing else; what leading involves is done elsewhere: taking
the lead (recovering the claims left behind, catching up, re-planning: this can
publish transitions and wait for the relays' answers) and the catch-up after a
database outage run in a thread of their own, the transitions in APScheduler's
threads. So a long catch-up or transition does not let the lease expire under
the leader. A leader that loses its lease (taken over, or expired while the
database did not answer) or is stopped in the middle of taking the lead or of a
catch-up stops before its next transition, and only announces that it leads
(``kiosk/engine/leader``) and resumes its APScheduler when it still holds the
lease once done; a transition already in hand is protected by its claims (see
above): nothing of it is published once another engine took its claims over.

Configuration (arguments of :class:`Engine`, the engine's settings in the
master config): ``grace`` (600 s), ``horizon_hours`` (48), ``tick`` (30 s),
``replan_interval`` (3600 s), ``sweep_delays`` (300, 600, 900 s),
``shutdown_delay`` (60 s), ``power_timeout`` (30 s: how long a transition waits
for the relays' and kiosks' answers before recording the silent ones),
``lease`` (1.5 x ``tick``, at least ``tick``).

Events fired on the master bus: ``kiosk/power/wake|shutdown`` after each
executed transition (also one settled after a crash); ``kiosk/power/missed``
(``at``, ``state``, ``rule``, ``kiosks``, ``late``) for a transition later than
``grace``; ``kiosk/engine/leader`` (``leader``, ``master``, ``role``) when this
master starts leading or steps down (``leader`` is null when it stepped down
because its lease expired while the database did not answer);
``kiosk/power/sweep`` after each verification sweep.

The Salt job ids recorded in the claims are only useful when the publisher
publishes each job under its ``jid`` (see :func:`salt_kiosk.fanout.run_jobs`).

Nothing executable is loaded from the database. APScheduler's own SQLAlchemy
job store pickles each job, and unpickling a row that any other writer of the
kiosk database put there runs its code. The engine uses
:class:`PlainJobStore` instead: table ``kiosk_scheduler_jobs`` (schema
migration 9, which also drops the old pickled ``kiosk_apscheduler_jobs``
without reading it). Each row holds one job as a JSON document:

``version``
    ``1``.
``id``, ``name``
    Strings; ``id`` equals the row's primary key.
``func``
    One of :data:`JOB_FUNCTIONS`: this module's ``run_transition``,
    ``run_sweep`` or ``run_tick``. It is looked up in that mapping, never
    imported.
``args``
    JSON values, checked per function (the engine key, ISO 8601 instants with
    an offset, ``on``/``off``, rule name or null, minion ids; event id, sweep
    index, final flag).
``trigger``
    ``{"type": "date", "run_date": ISO}`` or ``{"type": "interval",
    "seconds": N, "start_date": ISO, "end_date": ISO or null, "timezone":
    "UTC", "jitter": N or null}``: the only triggers the engine uses.
``executor``, ``misfire_grace_time``, ``coalesce``, ``max_instances``
    As in APScheduler (``executor`` must be ``default``).

``next_run_time`` is a column of its own (UTC seconds since the epoch, null for
a paused job). A row that is not such a document is logged and deleted, never
run; the engine re-plans from the rules at start, so nothing legitimate is
lost with it.
"""

import datetime
import json
import logging
import math
import socket
import threading
import time

import salt.utils.jid
import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from salt_kiosk import clock, config, fanout, inventory
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError, KioskSchemaError, KioskStoreError
from salt_kiosk.power import actions as power
from salt_kiosk.power import rules, schedule

log = logging.getLogger(__name__)

UTC = datetime.timezone.utc
JOBSTORE_TABLE = schema.scheduler_jobs.name
POWER_PREFIX = "kiosk-power:"
SWEEP_PREFIX = "kiosk-sweep:"
TICK_JOB = "kiosk-engine-tick"
LEADER_TAG = "kiosk/engine/leader"

#: Errors meaning the kiosk database does not answer (stopped, restarting,
#: unreachable, out of connections), as opposed to a statement it refused: the
#: engine rides them out (see "Database outages" in the module documentation).
DB_DOWN_ERRORS = (OperationalError, InterfaceError, PoolTimeoutError)

#: Claim statuses of ``kiosk_schedule_runs`` while a transition is in hand:
#: ``claimed`` (nothing published yet) and ``sending`` (the Salt job id of each
#: kiosk's command is recorded; the publish is under way or done).
CLAIMED = "claimed"
SENDING = "sending"
PENDING = (CLAIMED, SENDING)

#: While the database does not answer, the warning is repeated at most this often (seconds).
OUTAGE_REMINDER = 600

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


#: The only callables a stored job may name: APScheduler's reference
#: (``module:function``) -> the function. Looked up here, never imported.
JOB_FUNCTIONS = {f"{__name__}:{func.__name__}": func for func in (run_transition, run_sweep, run_tick)}

#: Executors a stored job may name (the engine configures only this one).
JOB_EXECUTORS = ("default",)

JOB_DOCUMENT_VERSION = 1
_DOCUMENT_KEYS = frozenset(
    ("version", "id", "name", "func", "args", "trigger", "executor", "misfire_grace_time", "coalesce", "max_instances")
)
_MAX_TEXT = 255


class InvalidJobRow(ValueError):
    """A stored job that is not a valid plain-data document of an engine job."""


def _utcnow():
    return datetime.datetime.now(UTC)


def _seconds(value, name):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise KioskInputError(f"kiosk_scheduler {name} {value!r} is not accepted (accepted: seconds > 0)")
    return number


def _naive(moment):
    return moment.astimezone(UTC).replace(tzinfo=None)


def _get_meta(conn, key):
    return conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == key)).scalar()


def _set_meta(conn, key, value):
    if not conn.execute(schema.meta.update().where(schema.meta.c.key == key).values(value=value)).rowcount:
        conn.execute(schema.meta.insert().values(key=key, value=value))


# -- database outages and job ids ---------------------------------------------


def describe_db_error(exc):
    """One line naming a database error (the driver's message, no traceback)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    text = text.splitlines()[0] if text else ""
    return f"{orig.__class__.__name__}: {text[:300]}" if text else orig.__class__.__name__


class DatabaseHealth:
    """
    Whether the kiosk database answers the engine. Every round that failed on
    the database (a tick, a lease step, a transition, the job store's own
    queries) is reported with :meth:`down`, a round that reached it with
    :meth:`up`. The log gets one warning when an outage starts (no
    traceback), a reminder at most every ``remind`` seconds while it lasts and
    one warning when it ends; the rest goes to the debug log. ``on_down`` is
    called after each failed round.

    ``started`` (:func:`time.monotonic` when the round began) keeps rounds that
    straddle a change from flapping the state: a round begun before the outage
    was noticed does not end it, one begun before the database answered again
    does not start a new one.
    """

    def __init__(self, node, clock=None, remind=OUTAGE_REMINDER, on_down=None):
        self.node = node
        self.clock = clock or _utcnow
        self.remind = float(remind)
        self.on_down = on_down
        self.since = None
        self.failures = 0
        self._reminded = None
        self._noticed = None
        self._back = None
        self._lock = threading.Lock()

    @property
    def ok(self):
        """False from a failed round until the next one that reached the database."""
        return self.since is None

    def down(self, what, exc, started=None):
        """Report that ``what`` (begun at ``started``) failed with the database error ``exc``."""
        now = self.clock()
        with self._lock:
            self.failures += 1
            stale = started is not None and self._back is not None and started < self._back
            if self.since is None and not stale:
                self.since = self._reminded = now
                self._noticed = time.monotonic()
                log.warning(
                    "kiosk_scheduler on %s: the kiosk database does not answer (%s: %s); the engine keeps "
                    "running, and transitions falling due meanwhile run once it is back (within grace)",
                    self.node,
                    what,
                    describe_db_error(exc),
                )
            elif self.since is not None and (now - self._reminded).total_seconds() >= self.remind:
                self._reminded = now
                log.warning(
                    "kiosk_scheduler on %s: the kiosk database still does not answer (since %s, %d failed rounds; "
                    "last: %s: %s)",
                    self.node,
                    clock.iso(self.since),
                    self.failures,
                    what,
                    describe_db_error(exc),
                )
            else:
                log.debug("kiosk_scheduler on %s: %s failed: %s", self.node, what, describe_db_error(exc))
        if self.on_down is not None:
            self.on_down()

    def up(self, what, started=None):
        """Report that ``what`` (begun at ``started``) reached the database."""
        if self.since is None:
            return
        now = self.clock()
        with self._lock:
            if self.since is None or (started is not None and started < self._noticed):
                return
            log.warning(
                "kiosk_scheduler on %s: the kiosk database answers again (%s) after %ds and %d failed rounds",
                self.node,
                what,
                max(0, int((now - self.since).total_seconds())),
                self.failures,
            )
            self.since = None
            self.failures = 0
            self._back = time.monotonic()


class ClaimLost(RuntimeError):
    """Another engine took over a claim this one held: nothing of it is published here."""


class LeadershipLost(RuntimeError):
    """This engine stopped leading (its lease was lost, or it is stopping) in the middle of the leader's work."""


_JID_LOCK = threading.Lock()
_LAST_JID = None


def new_jid(opts):
    """
    A Salt job id (:func:`salt.utils.jid.gen_jid`) to publish one job under,
    later than every one this process handed out before (so two jobs of one
    transition never share it).
    """
    global _LAST_JID  # pylint: disable=global-statement
    with _JID_LOCK:
        jid = salt.utils.jid.gen_jid(opts or {})
        stamp, sep, rest = jid.partition("_")
        if _LAST_JID is not None and stamp <= _LAST_JID:
            moment = datetime.datetime.strptime(_LAST_JID, "%Y%m%d%H%M%S%f") + datetime.timedelta(microseconds=1)
            stamp = moment.strftime("%Y%m%d%H%M%S%f")
        _LAST_JID = stamp
        return stamp + sep + rest


# -- the job store: plain data, no pickle ------------------------------------


def _text(value, field, max_len=_MAX_TEXT):
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InvalidJobRow(f"{field}: expected a non-empty string of at most {max_len} characters")
    return value


def _integer(value, field, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidJobRow(f"{field}: expected an integer >= {minimum}")
    return value


def _number(value, field, minimum, allow_zero=True):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < minimum
        or (not allow_zero and value == minimum)
    ):
        raise InvalidJobRow(f"{field}: expected a finite number {'>=' if allow_zero else '>'} {minimum}")
    return value


def _instant(value, field):
    """An ISO 8601 datetime with a UTC offset."""
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidJobRow(f"{field}: expected an ISO 8601 datetime with an offset")
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidJobRow(f"{field}: expected an ISO 8601 datetime with an offset") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidJobRow(f"{field}: {value!r} has no UTC offset")
    return moment


def _check_transition_args(args):
    if len(args) != 5:
        raise InvalidJobRow("args: run_transition takes (key, at, state, rule, minions)")
    _key, at, state, rule, minions = args
    _instant(at, "args.at")
    if state not in ("on", "off"):
        raise InvalidJobRow("args.state: expected 'on' or 'off'")
    if rule is not None:
        _text(rule, "args.rule", 128)
    if not isinstance(minions, list) or not minions:
        raise InvalidJobRow("args.minions: expected a non-empty list of minion ids")
    for minion in minions:
        _text(minion, "args.minions[]")


def _check_sweep_args(args):
    if len(args) != 4:
        raise InvalidJobRow("args: run_sweep takes (key, event_id, index, final)")
    _key, event_id, index, final = args
    _integer(event_id, "args.event_id", 1)
    _integer(index, "args.index", 1)
    if not isinstance(final, bool):
        raise InvalidJobRow("args.final: expected true or false")


def _check_tick_args(args):
    if len(args) != 1:
        raise InvalidJobRow("args: run_tick takes (key)")


_ARG_CHECKS = {
    f"{__name__}:run_transition": _check_transition_args,
    f"{__name__}:run_sweep": _check_sweep_args,
    f"{__name__}:run_tick": _check_tick_args,
}


def _iso(moment):
    return moment.astimezone(UTC).isoformat()


def _is_utc(tz):
    return tz is UTC or getattr(tz, "key", None) == "UTC"


def encode_trigger(trigger):
    """The plain-data form of a ``date`` or ``interval`` trigger (anything else is refused)."""
    if type(trigger) is DateTrigger:  # pylint: disable=unidiomatic-typecheck
        return {"type": "date", "run_date": _iso(trigger.run_date)}
    if type(trigger) is IntervalTrigger:  # pylint: disable=unidiomatic-typecheck
        if not _is_utc(trigger.timezone):
            raise ValueError(f"interval trigger in time zone {trigger.timezone}: only UTC is stored")
        return {
            "type": "interval",
            "seconds": trigger.interval.total_seconds(),
            "start_date": _iso(trigger.start_date),
            "end_date": _iso(trigger.end_date) if trigger.end_date else None,
            "timezone": "UTC",
            "jitter": trigger.jitter,
        }
    raise ValueError(f"trigger {trigger!r} cannot be stored: only date and interval triggers are")


def decode_trigger(spec):
    """Rebuild a trigger from :func:`encode_trigger`'s form, refusing anything else."""
    if not isinstance(spec, dict):
        raise InvalidJobRow("trigger: expected an object")
    kind = spec.get("type")
    if kind == "date":
        if set(spec) != {"type", "run_date"}:
            raise InvalidJobRow("trigger: a date trigger has exactly type and run_date")
        trigger = DateTrigger.__new__(DateTrigger)
        trigger.__setstate__({"version": 1, "run_date": _instant(spec["run_date"], "trigger.run_date")})
        return trigger
    if kind == "interval":
        if set(spec) != {"type", "seconds", "start_date", "end_date", "timezone", "jitter"}:
            raise InvalidJobRow(
                "trigger: an interval trigger has exactly type, seconds, start_date, end_date, timezone and jitter"
            )
        seconds = _number(spec["seconds"], "trigger.seconds", 0, allow_zero=False)
        if spec["timezone"] != "UTC":
            raise InvalidJobRow("trigger.timezone: only 'UTC' is accepted")
        jitter = spec["jitter"]
        if jitter is not None:
            _number(jitter, "trigger.jitter", 0)
        end_date = spec["end_date"]
        try:
            interval = datetime.timedelta(seconds=seconds)
        except OverflowError:
            raise InvalidJobRow("trigger.seconds: out of range") from None
        trigger = IntervalTrigger.__new__(IntervalTrigger)
        trigger.__setstate__(
            {
                "version": 2,
                "timezone": UTC,
                "start_date": _instant(spec["start_date"], "trigger.start_date"),
                "end_date": _instant(end_date, "trigger.end_date") if end_date is not None else None,
                "interval": interval,
                "jitter": jitter,
            }
        )
        return trigger
    raise InvalidJobRow(f"trigger.type: {str(kind)[:40]!r} is not one of 'date', 'interval'")


def encode_job(job):
    """
    The JSON document stored for ``job``. Only the engine's own job functions,
    JSON arguments and date/interval triggers can be stored; anything else
    raises ``ValueError`` (nothing is written).
    """
    if job.func_ref not in JOB_FUNCTIONS or JOB_FUNCTIONS[job.func_ref] is not job.func:
        raise ValueError(f"job {job.id}: {job.func_ref or job.func!r} is not one of the engine's job functions")
    if job.kwargs:
        raise ValueError(f"job {job.id}: keyword arguments are not stored")
    document = {
        "version": JOB_DOCUMENT_VERSION,
        "id": job.id,
        "name": job.name,
        "func": job.func_ref,
        "args": list(job.args),
        "trigger": encode_trigger(job.trigger),
        "executor": job.executor,
        "misfire_grace_time": job.misfire_grace_time,
        "coalesce": job.coalesce,
        "max_instances": job.max_instances,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    # What is written must be what loading accepts.
    decode_document(job.id, text)
    return text


def _refuse_constant(name):
    raise InvalidJobRow(f"{name} is not a JSON number")


def decode_document(row_id, text, key=None):
    """
    Validate a stored job document; return ``(function reference, document)``
    with ``document["trigger"]`` rebuilt as a trigger object. ``key``, when
    given, is the engine key every job's first argument must carry. Raises
    :class:`InvalidJobRow`.
    """
    if not isinstance(text, str):
        raise InvalidJobRow("the job is not JSON text")
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise InvalidJobRow("the job is not a JSON document") from None
    if not isinstance(document, dict) or set(document) != _DOCUMENT_KEYS:
        raise InvalidJobRow(f"the job document must have exactly the keys {sorted(_DOCUMENT_KEYS)}")
    if document["version"] != JOB_DOCUMENT_VERSION or isinstance(document["version"], bool):
        raise InvalidJobRow(f"version: only {JOB_DOCUMENT_VERSION} is understood")
    if document["id"] != row_id:
        raise InvalidJobRow("id: does not match the row")
    _text(document["name"], "name")
    func_ref = document["func"]
    if not isinstance(func_ref, str) or func_ref not in JOB_FUNCTIONS:
        raise InvalidJobRow(f"func: {str(func_ref)[:80]!r} is not one of the engine's job functions")
    args = document["args"]
    if not isinstance(args, list) or not args:
        raise InvalidJobRow("args: expected a list")
    _text(args[0], "args.key", 64)
    if key is not None and args[0] != key:
        raise InvalidJobRow(f"args.key: the job belongs to engine {args[0][:64]!r}, not {key!r}")
    _ARG_CHECKS[func_ref](args)
    if document["executor"] not in JOB_EXECUTORS:
        raise InvalidJobRow(f"executor: expected one of {list(JOB_EXECUTORS)}")
    if document["misfire_grace_time"] is not None:
        _integer(document["misfire_grace_time"], "misfire_grace_time", 1)
    if not isinstance(document["coalesce"], bool):
        raise InvalidJobRow("coalesce: expected true or false")
    _integer(document["max_instances"], "max_instances", 1)
    document["trigger"] = decode_trigger(document["trigger"])
    return func_ref, document


def _next_run_time(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidJobRow("next_run_time: not a timestamp")
    try:
        return datetime.datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidJobRow("next_run_time: out of range") from None


class PlainJobStore(BaseJobStore):
    """
    APScheduler job store in ``kiosk_scheduler_jobs``: each job is a JSON
    document of plain data (see the module documentation), never a pickle.
    Loading validates every field and rebuilds the job from the allowlist of
    :data:`JOB_FUNCTIONS`; a row that does not validate is logged and deleted,
    never run.

    With ``health`` (a :class:`DatabaseHealth`), APScheduler's own loop rides
    out a database outage instead of logging a traceback per round (or dying:
    an error from ``update_job``, ``remove_job`` or ``get_next_run_time``
    ends its thread): the outage is reported there, due jobs are looked for
    again ``retry`` seconds later, and a finished job left in the store runs
    again later, where the per-kiosk claims make it a no-op. Calls from any
    other thread (the engine planning) still raise.
    """

    def __init__(self, engine, key="kiosk", health=None, retry=10):
        super().__init__()
        self.engine = engine
        self.key = key
        self.table = schema.scheduler_jobs
        self.health = health
        self.retry = _seconds(retry, "job store retry")

    def _loop_outage(self, what, exc, started, any_thread=False):
        """Report ``exc`` and return True when the scheduler's loop must carry on without raising."""
        if self.health is None:
            return False
        if not any_thread and threading.current_thread() is not getattr(self._scheduler, "_thread", None):
            return False
        self.health.down(f"job store {what}", exc, started)
        return True

    # -- rows <-> jobs ---------------------------------------------------

    def _rebuild(self, row):
        func_ref, document = decode_document(row.id, row.job, key=self.key)
        job = Job.__new__(Job)
        job._scheduler = self._scheduler  # pylint: disable=protected-access
        job._jobstore_alias = self._alias  # pylint: disable=protected-access
        job.id = row.id
        job.name = document["name"]
        job.func_ref = func_ref
        job.func = JOB_FUNCTIONS[func_ref]
        job.args = tuple(document["args"])
        job.kwargs = {}
        job.trigger = document["trigger"]
        job.executor = document["executor"]
        job.misfire_grace_time = document["misfire_grace_time"]
        job.coalesce = document["coalesce"]
        job.max_instances = document["max_instances"]
        job.next_run_time = _next_run_time(row.next_run_time)
        return job

    def _load(self, conn, query):
        jobs, bad = [], []
        for row in conn.execute(query):
            try:
                jobs.append(self._rebuild(row))
            except Exception as exc:  # pylint: disable=broad-except
                # Anything that is not a valid document is refused the same way.
                log.error(
                    "kiosk_scheduler: stored job %r is not a valid engine job (%s): deleted, not run",
                    str(row.id)[:200],
                    exc,
                )
                bad.append(row.id)
        if bad:
            conn.execute(self.table.delete().where(self.table.c.id.in_(bad)))
        return jobs

    def _select(self):
        return sa.select(self.table.c.id, self.table.c.next_run_time, self.table.c.job)

    # -- BaseJobStore ----------------------------------------------------

    def lookup_job(self, job_id):
        with self.engine.begin() as conn:
            jobs = self._load(conn, self._select().where(self.table.c.id == job_id))
        return jobs[0] if jobs else None

    def get_due_jobs(self, now):
        timestamp = now.timestamp()
        started = time.monotonic()
        try:
            with self.engine.begin() as conn:
                jobs = self._load(
                    conn,
                    self._select().where(self.table.c.next_run_time <= timestamp).order_by(self.table.c.next_run_time),
                )
        except DB_DOWN_ERRORS as exc:
            if not self._loop_outage("get_due_jobs", exc, started, any_thread=True):
                raise
            return []
        if self.health is not None:
            self.health.up("job store", started)
        return jobs

    def get_next_run_time(self):
        started = time.monotonic()
        try:
            with self.engine.begin() as conn:
                value = conn.execute(
                    sa.select(self.table.c.next_run_time)
                    .where(self.table.c.next_run_time.is_not(None))
                    .order_by(self.table.c.next_run_time)
                    .limit(1)
                ).scalar()
        except DB_DOWN_ERRORS as exc:
            if not self._loop_outage("get_next_run_time", exc, started, any_thread=True):
                raise
            # Look again then (APScheduler sleeps until this time).
            return _utcnow() + datetime.timedelta(seconds=self.retry)
        try:
            return _next_run_time(value)
        except InvalidJobRow:
            # The row is dropped when it is loaded; wake up now to get there.
            return _utcnow()

    def get_all_jobs(self):
        with self.engine.begin() as conn:
            jobs = self._load(conn, self._select().order_by(self.table.c.next_run_time))
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    def _values(self, job):
        return {
            "next_run_time": job.next_run_time.timestamp() if job.next_run_time else None,
            "job": encode_job(job),
        }

    def add_job(self, job):
        values = self._values(job)
        with self.engine.begin() as conn:
            try:
                conn.execute(self.table.insert().values(id=job.id, **values))
            except IntegrityError:
                raise ConflictingIdError(job.id) from None

    def update_job(self, job):
        values = self._values(job)
        started = time.monotonic()
        try:
            with self.engine.begin() as conn:
                changed = conn.execute(self.table.update().where(self.table.c.id == job.id).values(**values)).rowcount
        except DB_DOWN_ERRORS as exc:
            if not self._loop_outage("update_job", exc, started):
                raise
            return
        if not changed:
            raise JobLookupError(job.id)

    def remove_job(self, job_id):
        started = time.monotonic()
        try:
            with self.engine.begin() as conn:
                removed = conn.execute(self.table.delete().where(self.table.c.id == job_id)).rowcount
        except DB_DOWN_ERRORS as exc:
            if not self._loop_outage("remove_job", exc, started):
                raise
            return
        if not removed:
            raise JobLookupError(job_id)

    def remove_all_jobs(self):
        with self.engine.begin() as conn:
            conn.execute(self.table.delete())

    def __repr__(self):
        return f"<{self.__class__.__name__} ({self.table.name})>"


def default_sweep_hook(engine, event_id, index, final):
    """
    Run verification sweep ``index`` of a power event (see :mod:`salt_kiosk.power.verify`);
    announce it on the master bus as ``kiosk/power/sweep`` with its counts (or
    its ``error``). A sweep that fails because the database does not answer is
    reported as part of the outage (see :class:`DatabaseHealth`).
    """
    from salt_kiosk.power import verify  # pylint: disable=import-outside-toplevel

    try:
        summary = verify.verify(
            engine.opts, engine.kstore, event_id, sweep=index, final=final, fire=engine.fire, publish=engine.publish
        )
    except Exception as exc:  # pylint: disable=broad-except
        if isinstance(exc, DB_DOWN_ERRORS) and getattr(engine, "health", None) is not None:
            engine.health.down(f"sweep {index} of power event {event_id}", exc)
            exc = describe_db_error(exc)
        else:
            log.error("kiosk_scheduler: sweep %s of power event %s failed: %s", index, event_id, exc)
        engine.fire({"event": event_id, "sweep": index, "final": final, "error": str(exc)}, "kiosk/power/sweep")
        return
    engine.fire(
        {"event": event_id, "sweep": index, "final": final, "ok": summary["ok"], "wrong": summary["wrong"]},
        "kiosk/power/sweep",
    )


class Engine:
    """One scheduler engine over the kiosk database configured in ``opts``."""

    def __init__(
        self,
        opts,
        grace=600,
        horizon_hours=48,
        tick=30,
        replan_interval=3600,
        sweep_delays=(300, 600, 900),
        shutdown_delay=60,
        power_timeout=30,
        publish=fanout.run_jobs,
        fire=None,
        sweep_hook=default_sweep_hook,
        clock=_utcnow,
        key="kiosk",
        lease=None,
        node=None,
    ):
        self.opts = opts
        self.tick_seconds = _seconds(tick, "tick")
        self.lease_seconds = 1.5 * self.tick_seconds if lease is None else _seconds(lease, "lease")
        if self.lease_seconds < self.tick_seconds:
            raise KioskInputError(
                f"kiosk_scheduler lease {lease!r} is shorter than tick {tick!r} (accepted: seconds >= tick; "
                "default 1.5 x tick)"
            )
        self.node = str(node or opts.get("master_id") or opts.get("id") or socket.gethostname())
        self.leading = False
        self._stopping = threading.Event()
        self._lease_thread = None
        # One lease round at a time (the lease thread, start(), a test driving
        # lease_step); the leader's work runs in _lead_thread, never in a round.
        self._lease_lock = threading.Lock()
        self._lead_thread = None
        self.grace = int(grace)
        self.horizon = datetime.timedelta(hours=float(horizon_hours))
        self.replan_interval = datetime.timedelta(seconds=float(replan_interval))
        self.sweep_delays = [float(d) for d in sweep_delays]
        self.shutdown_delay = int(shutdown_delay)
        self.power_timeout = power.check_timeout(power_timeout)
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
        # Database outages: a failed round sets _catch_up_due; the leader's next
        # round that reaches the database catches up before recording its tick.
        self.health = DatabaseHealth(self.node, clock=clock, on_down=self._outage_noticed)
        self._catch_up_due = False
        self._round_lock = threading.RLock()
        self._lease_expires = None
        # (naive UTC instant, minion id) of the claims this process is executing now.
        self._inflight = set()
        self._inflight_lock = threading.Lock()
        # jid -> {"returns": what its job returned, "result": the power event's
        # summary once recorded}: jobs this process published whose claims are
        # not settled yet (the database failed after the publish).
        self._sent = {}

    # -- lifecycle -------------------------------------------------------

    def start(self):
        """
        Open the store and start APScheduler paused; take the lease when it is
        free (then catch up, plan and run, before returning) and keep renewing
        or trying in the background.
        While the database cannot be opened the engine waits (one warning, a
        new attempt every ``tick / 2`` seconds) instead of failing.
        """
        from salt_kiosk.db import store  # pylint: disable=import-outside-toplevel

        self._stopping.clear()
        while True:
            try:
                self.kstore = store.open_store(self.opts)
                break
            except KioskSchemaError:
                raise
            except KioskStoreError as exc:
                self.health.down("opening the store", exc)
                if self._stopping.wait(self.tick_seconds / 2):
                    return
        self.health.up("opening the store")
        self.scheduler = BackgroundScheduler(
            jobstores={
                "default": PlainJobStore(
                    self.kstore.engine, key=self.key, health=self.health, retry=min(10.0, self.tick_seconds / 2)
                )
            },
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": self.grace},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        _ACTIVE[self.key] = self
        # Paused until this engine leads: a standby's scheduler only stores
        # jobs (the sweeps of manual power events) for the leader to run.
        self.scheduler.start(paused=True)
        # The lease thread first: should this start take the lead and catch up
        # for long, the lease is renewed meanwhile.
        self._lease_thread = threading.Thread(target=self._lease_loop, name=f"kiosk-lease-{self.key}", daemon=True)
        self._lease_thread.start()
        self.lease_step()
        log.info(
            "kiosk_scheduler started on %s (grace %ss, horizon %s, tick %ss, lease %ss): %s",
            self.node,
            self.grace,
            self.horizon,
            self.tick_seconds,
            self.lease_seconds,
            "leading" if self.leading else "standing by",
        )

    def stop(self, release=True):
        """Stop; with ``release`` (a clean stop) hand the lease over at once."""
        leading = self.leading
        self._stopping.set()
        if self._lease_thread is not None:
            self._lease_thread.join(timeout=10)
            self._lease_thread = None
        if self._lead_thread is not None:
            # Taking the lead or catching up: it stops before its next transition.
            self._lead_thread.join(timeout=10)
            self._lead_thread = None
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if release and (leading or self.leading) and self.kstore is not None:
            leases = schema.engine_leases
            try:
                with self.kstore.begin() as conn:
                    conn.execute(
                        leases.update()
                        .where(leases.c.key == self.key)
                        .where(leases.c.holder == self.node)
                        .values(expires_at=_naive(self.clock()))
                    )
            except DB_DOWN_ERRORS as exc:
                log.warning(
                    "kiosk_scheduler: %s could not release the lease (%s); it expires by itself",
                    self.node,
                    describe_db_error(exc),
                )
        self.leading = False
        self._lease_expires = None
        _ACTIVE.pop(self.key, None)

    # -- database outages ------------------------------------------------

    def _outage_noticed(self):
        self._catch_up_due = True

    def _db_down(self, what, exc, started=None):
        self.health.down(what, exc, started)

    def _catch_up_after_outage(self, now):
        """The first round that reaches the database after a failed one: catch up from the last recorded tick."""
        self._catch_up_due = False
        try:
            handled = self.catch_up(now, leader=True)
        except BaseException:
            self._catch_up_due = True
            raise
        ran = [o for o in handled if o["status"] not in ("already handled",)]
        if ran:
            log.warning(
                "kiosk_scheduler: %s caught up after the database outage: %s",
                self.node,
                ", ".join(f"{o['at']} {o['state']} {o['status']} {o['kiosks']}" for o in ran),
            )
        return handled

    # -- leadership ------------------------------------------------------

    def _lease_loop(self):
        # Renews (or tries to take) the lease and nothing else: the leader's
        # work is handed over (see _lease_round), so no renewal waits for it.
        while not self._stopping.wait(self.tick_seconds / 2):
            try:
                self._lease_round(background=True)
            except Exception as exc:  # pylint: disable=broad-except
                log.error("kiosk_scheduler: lease check on %s failed: %s", self.node, exc)

    def _take_lease(self, now):
        """Renew or take the lease at ``now``; return ``(held, holder)``."""
        leases = schema.engine_leases
        naive = _naive(now)
        expires = naive + datetime.timedelta(seconds=self.lease_seconds)
        with self.kstore.begin() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.key == self.key)).first()
            if row is not None and row.holder == self.node:
                done = conn.execute(
                    leases.update()
                    .where(leases.c.key == self.key)
                    .where(leases.c.holder == self.node)
                    .values(renewed_at=naive, expires_at=expires)
                ).rowcount
            elif row is not None and row.expires_at <= naive:
                done = conn.execute(
                    leases.update()
                    .where(leases.c.key == self.key)
                    .where(leases.c.holder == row.holder)
                    .where(leases.c.expires_at <= naive)
                    .values(holder=self.node, acquired_at=naive, renewed_at=naive, expires_at=expires)
                ).rowcount
            elif row is not None:
                return False, row.holder
            else:
                done = 0
        if row is None:
            try:
                with self.kstore.begin() as conn:
                    conn.execute(
                        leases.insert().values(
                            key=self.key, holder=self.node, acquired_at=naive, renewed_at=naive, expires_at=expires
                        )
                    )
                done = 1
            except IntegrityError:
                done = 0
        if done:
            return True, self.node
        with self.kstore.connect() as conn:
            return False, conn.execute(sa.select(leases.c.holder).where(leases.c.key == self.key)).scalar()

    def lease_step(self, now=None):
        """
        One leadership round: renew or take the lease; start leading when it
        was won, step down when another master holds it. Return True while
        this engine leads.

        A round that fails on the database is reported (see
        :class:`DatabaseHealth`), not raised; a leader whose lease expires
        while the database does not answer steps down (whoever takes the lease
        afterwards catches up). The first round that reaches the database
        again catches up on what fell due meanwhile while this engine still
        leads.

        Called directly (by :meth:`start`, or a test driving the rounds), the
        leader's work of the round (taking the lead, a catch-up) is done before
        it returns. The lease thread's rounds hand that work over to a thread
        of its own instead (see :meth:`_lease_round`): they never wait for it.
        """
        return self._lease_round(now)

    def _lease_round(self, now=None, background=False):
        """
        :meth:`lease_step`; with ``background`` (the lease thread) the work
        that leading needs is handed over to the leader's thread (one at a
        time) and the round returns at once, so renewals go on meanwhile.
        """
        now = now or self.clock()
        started = time.monotonic()
        with self._lease_lock:
            try:
                held, holder = self._take_lease(now)
            except DB_DOWN_ERRORS as exc:
                self._db_down("lease", exc, started)
                if self.leading and self._lease_expires is not None and now >= self._lease_expires:
                    self._step_down(
                        None,
                        f"its lease expired at {clock.iso(self._lease_expires)} while the kiosk database did not answer",
                    )
                return self.leading
            self.health.up("lease", started)
            if not held:
                self._lease_expires = None
                if self.leading:
                    self._step_down(holder, f"{holder} holds the lease now")
                return self.leading
            self._lease_expires = now + datetime.timedelta(seconds=self.lease_seconds)
            work = not self.leading or self._catch_up_due
        if background:
            if work:
                self._hand_over(now)
            return self.leading
        lead = self._lead_thread
        if lead is not None and lead is not threading.current_thread():
            lead.join()  # the lease thread handed this work over already: done once it ends
        self._leader_round(now)
        return self.leading

    def _hand_over(self, now):
        """Run the leader's work of a round won at ``now`` in the leader's thread (unless it is still at it)."""
        if self._lead_thread is not None and self._lead_thread.is_alive():
            return  # still taking the lead or catching up; the lease is renewed meanwhile
        self._lead_thread = threading.Thread(
            target=self._leader_work, args=(now,), name=f"kiosk-lead-{self.key}", daemon=True
        )
        self._lead_thread.start()

    def _leader_work(self, now):
        try:
            self._leader_round(now)
        except Exception as exc:  # pylint: disable=broad-except
            log.error("kiosk_scheduler: taking the lead on %s failed: %s", self.node, exc)

    def _leader_round(self, now):
        """What a round that holds the lease at ``now`` leaves to do: take the lead, or catch up after an outage."""
        if not self.leading:
            try:
                self._lead(now)
            except DB_DOWN_ERRORS as exc:
                self._db_down("taking the lead", exc)
            except LeadershipLost as exc:
                log.warning("kiosk_scheduler: %s stopped taking the lead: %s", self.node, exc)
        elif self._catch_up_due and self._round_lock.acquire(blocking=False):
            try:
                self._catch_up_after_outage(now)
            except DB_DOWN_ERRORS as exc:
                self._db_down("catching up", exc)
            except LeadershipLost as exc:
                log.warning("kiosk_scheduler: %s stopped catching up: %s", self.node, exc)
            finally:
                self._round_lock.release()

    def _check_leading(self):
        """Raise :class:`LeadershipLost` when this engine stepped down or is stopping."""
        if self._stopping.is_set():
            raise LeadershipLost(f"{self.node} is stopping")
        if not self.leading:
            raise LeadershipLost(f"{self.node} no longer holds the lease")

    def _step_down(self, holder, why):
        log.warning("kiosk_scheduler: %s steps down: %s", self.node, why)
        self.leading = False
        self._lease_expires = None
        self.scheduler.pause()
        self.fire({"leader": holder, "master": self.node, "role": "standby"}, LEADER_TAG)

    def _lead(self, now):
        # Catch up to ``now``, re-plan from that same instant while APScheduler is
        # paused (so that jobs persisted before a rule change never run), then go.
        # Any step failing leaves this engine standing by; the next round retries.
        # The lease thread keeps renewing meanwhile; should it step down, this
        # stops before the next transition (LeadershipLost) and never resumes.
        with self._round_lock:
            with self._lease_lock:
                if self.leading or self._lease_expires is None:
                    return  # led already (another round got here first), or the lease is gone since
                self.leading = True
            try:
                with self.kstore.begin() as conn:
                    _set_meta(conn, "engine_started_at", _naive(now).isoformat())
                    _set_meta(conn, "engine_leader", self.node)
                self._catch_up_due = False
                self.catch_up(now, leader=True)
                self._check_leading()
                self.replan("leading", since=now)
                self.scheduler.add_job(
                    run_tick,
                    "interval",
                    seconds=self.tick_seconds,
                    id=TICK_JOB,
                    args=[self.key],
                    replace_existing=True,
                    misfire_grace_time=None,
                )
                self._check_leading()
                self._tick(now)
            except BaseException:
                self.leading = False
                raise
        with self._lease_lock:
            self._check_leading()
            log.warning("kiosk_scheduler: %s leads the engine %r now", self.node, self.key)
            self.scheduler.resume()
            self.fire({"leader": self.node, "master": self.node, "role": "leader"}, LEADER_TAG)

    def fire(self, data, tag):
        """Fire ``data`` under ``tag`` on the master bus (when a bus was given)."""
        if self._fire is not None:
            self._fire(data, tag)

    # -- planning --------------------------------------------------------

    def _revisions(self, conn):
        return (_get_meta(conn, "rules_revision") or "0", _get_meta(conn, "inventory_revision") or "0")

    def desired_jobs(self, since, until):
        """``{job id: (at, state, rule, [minions])}`` for transitions in (since, until]."""
        kiosks = inventory.list_kiosks(self.kstore, "*")
        computed = schedule.compute(
            kiosks,
            self.kstore.campus_rows(),
            rules.load(self.kstore),
            config.default_state(self.opts),
            since=since,
            until=until,
            now=since,
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
        for transitions after ``since`` (default now). Only the leader plans;
        a standby returns None.
        """
        if not self.leading:
            return None
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
            log.info(
                "kiosk_scheduler re-planned (%s): %d transition jobs, %d added/changed, %d removed",
                reason,
                len(desired),
                added,
                removed,
            )
            return {"jobs": len(desired), "added": added, "removed": removed}

    def catch_up(self, now=None, leader=False):
        """
        Settle the claims left pending by an engine that is gone (see
        :meth:`recover_claims`), then run (within grace) or record as missed
        the transitions since the last tick, up to ``now``. After a very long
        outage only the last ``schedule.MAX_SPAN`` is looked at. Return the
        outcome of each transition (see :meth:`execute`).

        With ``leader`` (the leader's own catch-up), raise
        :class:`LeadershipLost` before the next transition once this engine
        stepped down or is stopping: the engine leading next catches up.
        """
        now = now or self.clock()
        handled = self.recover_claims(now, leader=leader)
        with self.kstore.connect() as conn:
            last = _get_meta(conn, "engine_last_tick")
        if not last:
            return handled
        since = datetime.datetime.fromisoformat(last).replace(tzinfo=UTC) - datetime.timedelta(seconds=60)
        oldest = now - schedule.MAX_SPAN + datetime.timedelta(minutes=1)
        if since < oldest:
            log.warning("kiosk_scheduler: down since %s; transitions before %s are not looked at", since, oldest)
            since = oldest
        if since >= now:
            return handled
        for _job_id, (at, state, rule, minions) in sorted(self.desired_jobs(since, now).items()):
            if at <= now:
                if leader:
                    self._check_leading()
                handled.append(self.execute(at, state, rule, minions))
        return handled

    def tick(self):
        """
        Heartbeat: record the tick; re-plan when revisions moved or the plan
        is old. After a round that failed on the database, the leader first
        catches up from the last recorded tick. Return False (the outage
        reported, nothing raised) when the database did not answer.
        """
        started = time.monotonic()
        try:
            self._tick(started=started)
        except DB_DOWN_ERRORS as exc:
            self._db_down("tick", exc, started)
            return False
        return True

    def _tick(self, now=None, started=None):
        now = now or self.clock()
        with self._round_lock:
            if self.leading and self._catch_up_due:
                try:
                    self._catch_up_after_outage(now)
                except LeadershipLost as exc:
                    # Deposed meanwhile: the next leader catches up from the last recorded tick.
                    log.warning("kiosk_scheduler: %s stopped catching up: %s", self.node, exc)
                    return
            with self.kstore.begin() as conn:
                _set_meta(conn, "engine_last_tick", _naive(now).isoformat())
                revisions = self._revisions(conn)
        self.health.up("tick", started)
        if revisions != self._planned or self._last_plan is None or now - self._last_plan >= self.replan_interval:
            self.replan("revision changed" if revisions != self._planned else "interval")

    # -- execution -------------------------------------------------------

    def _hold(self, naive_at, minion):
        """Mark (instant, kiosk) as in hand in this process; False when it already is."""
        with self._inflight_lock:
            if (naive_at, minion) in self._inflight:
                return False
            self._inflight.add((naive_at, minion))
            return True

    def _release(self, at, minions):
        naive_at = _naive(at)
        with self._inflight_lock:
            for minion in minions:
                self._inflight.discard((naive_at, minion))

    def _claim(self, at, state, rule, minions, status, claimed):
        """Insert one run row per kiosk; append to ``claimed`` the kiosks this call owns (held in this process)."""
        naive_at = _naive(at)
        for minion in minions:
            if not self._hold(naive_at, minion):
                continue  # this process has it in hand already
            try:
                with self.kstore.begin() as conn:
                    conn.execute(
                        schema.schedule_runs.insert().values(
                            at=naive_at,
                            minion_id=minion,
                            state=state,
                            rule=rule,
                            status=status,
                            holder=self.node,
                            recorded_at=_naive(self.clock()),
                        )
                    )
            except IntegrityError:
                self._release(at, [minion])
                continue
            except BaseException:
                self._release(at, [minion])
                raise
            claimed.append(minion)
        return claimed

    def execute(self, at, state, rule, minions):
        """
        Execute (or record as missed) one transition for ``minions``, at most
        once per kiosk. Return its outcome: ``at``, ``state``, ``rule``,
        ``kiosks`` (those this call claimed) and ``status``: ``done``,
        ``failed``, ``missed``, ``already handled``, ``taken over`` (another
        engine took the claims over before anything was published) or
        ``deferred`` (the database did not answer: the outage is reported and
        the catch-up once it answers again settles the transition).
        """
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        started = time.monotonic()
        late = (self.clock() - at).total_seconds()
        status = "missed" if late > self.grace else CLAIMED
        claimed = []
        outcome = {"at": clock.iso(at), "state": state, "rule": rule, "kiosks": claimed, "status": status}
        try:
            self._claim(at, state, rule, minions, status, claimed)
            if not claimed:
                outcome["status"] = "already handled"
                return outcome
            if status == "missed":
                self._report_missed(at, state, rule, claimed, late)
                return outcome
            return self._send(at, state, rule, claimed, outcome)
        except DB_DOWN_ERRORS as exc:
            self._db_down(f"transition {clock.iso(at)} -> {state}", exc, started)
            outcome.update(status="deferred", error=describe_db_error(exc))
            return outcome
        finally:
            self._release(at, claimed)

    def _report_missed(self, at, state, rule, kiosks, late):
        log.warning("kiosk_scheduler: transition %s -> %s (%s) missed by %ds for %s", at, state, rule, late, kiosks)
        self.fire(
            {"at": clock.iso(at), "state": state, "rule": rule, "kiosks": kiosks, "late": int(late)},
            "kiosk/power/missed",
        )

    def _power(self, state, rule, kiosks, publish, before_publish):
        target = f"schedule:{rule or 'default'}"
        common = {
            "user": "kiosk_scheduler",
            "source": "schedule",
            "rule": rule,
            "publish": publish,
            "minions": kiosks,
            "before_publish": before_publish,
            "timeout": self.power_timeout,
        }
        if state == "on":
            return target, power.wake(self.opts, self.kstore, target, port=None, **common)
        return target, power.shutdown(self.opts, self.kstore, target, delay=self.shutdown_delay, **common)

    def _mark_sending(self, at, kiosks, jobs, carriers):
        """
        Give each job a fresh jid and record, in one transaction, each kiosk's
        claim as ``sending`` with the jid of the job carrying its command.
        Raises :class:`ClaimLost` (nothing recorded) when a claim is no longer
        this engine's.
        """
        runs = schema.schedule_runs
        jid_of = {}
        for key, job in jobs.items():
            job["jid"] = new_jid(self.opts)
            for minion in carriers.get(key, ()):
                jid_of[minion] = job["jid"]
        now = _naive(self.clock())
        with self.kstore.begin() as conn:
            for minion in kiosks:
                done = conn.execute(
                    runs.update()
                    .where(runs.c.at == _naive(at))
                    .where(runs.c.minion_id == minion)
                    .where(runs.c.status == CLAIMED)
                    .where(runs.c.holder == self.node)
                    .values(status=SENDING, jid=jid_of.get(minion), recorded_at=now)
                ).rowcount
                if not done:
                    raise ClaimLost(f"the claim of {minion} at {clock.iso(at)} is no longer held by {self.node}")
        return [job["jid"] for job in jobs.values()]

    def _send(self, at, state, rule, kiosks, outcome):
        """Publish the transition for the claimed ``kiosks`` and settle their claims."""
        jids = []

        def before_publish(jobs, carriers):
            jids.extend(self._mark_sending(at, kiosks, jobs, carriers))

        def publish(opts, jobs, timeout):
            returns = self.publish(opts, jobs, timeout)
            # Published: should the database fail before the claims are
            # settled, the catch-up settles them from here, never re-sending.
            for key, job in jobs.items():
                if job.get("jid"):
                    self._sent[job["jid"]] = {"returns": returns.get(key, {}), "result": None}
            return returns

        try:
            target, result = self._power(state, rule, kiosks, publish, before_publish)
        except ClaimLost as exc:
            log.warning("kiosk_scheduler: transition %s -> %s not sent by %s: %s", at, state, self.node, exc)
            outcome["status"] = "taken over"
            return outcome
        except DB_DOWN_ERRORS:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            log.error("kiosk_scheduler: transition %s -> %s failed: %s", at, state, exc)
            self._finish(at, kiosks, "failed", None)
            for jid in jids:
                self._sent.pop(jid, None)
            outcome["status"] = "failed"
            outcome["error"] = str(exc)
            return outcome
        for jid in jids:
            if jid in self._sent:
                self._sent[jid]["result"] = result
        self._settled(at, kiosks, target, result, jids)
        outcome.update(status="done", event=result["event"])
        return outcome

    def _settled(self, at, kiosks, target, result, jids):
        """The power event of ``kiosks`` is recorded: finish their claims, announce it, schedule its sweeps."""
        self._finish(at, kiosks, "done", result["event"])
        for jid in jids:
            self._sent.pop(jid, None)
        self.fire(
            {
                "event": result["event"],
                "target": target,
                "user": "kiosk_scheduler",
                "ok": result["ok"],
                "failed": result["failed"],
                "kiosks": {m: e["ok"] for m, e in result["kiosks"].items()},
            },
            f"kiosk/power/{result['action']}",
        )
        try:
            self.schedule_sweeps(result["event"])
        except DB_DOWN_ERRORS as exc:
            self._db_down(f"scheduling the sweeps of power event {result['event']}", exc)
            log.warning("kiosk_scheduler: the sweeps of power event %s are not scheduled", result["event"])

    def _finish(self, at, minions, status, event_id):
        runs = schema.schedule_runs
        with self.kstore.begin() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.at == _naive(at))
                .where(runs.c.minion_id.in_(minions))
                .where(runs.c.status.in_(PENDING))
                .where(runs.c.holder == self.node)
                .values(status=status, event_id=event_id, recorded_at=_naive(self.clock()))
            )

    # -- claims left behind ----------------------------------------------

    def _was_published(self, jid):
        """True when the job ``jid`` went out: published by this process, or known to the job results store."""
        if jid in self._sent:
            return True
        with self.kstore.connect() as conn:
            for table in (schema.jobs, schema.returns):
                if conn.execute(sa.select(table.c.jid).where(table.c.jid == jid).limit(1)).first() is not None:
                    return True
        return False

    def _returns_of(self, jid):
        """What job ``jid`` returned: as this process got it, else as the relays' returner recorded it."""
        if jid is None:
            return {}
        if jid in self._sent:
            return self._sent[jid]["returns"]
        returns = {}
        with self.kstore.connect() as conn:
            for row in conn.execute(sa.select(schema.returns).where(schema.returns.c.jid == jid)):
                try:
                    full = json.loads(row.ret)
                except ValueError:
                    full = {}
                if not isinstance(full, dict):
                    full = {}
                retcode = row.retcode if row.retcode is not None else full.get("retcode", 0)
                returns[row.minion_id] = {"ret": full.get("return"), "retcode": retcode}
        return returns

    def _take(self, row, status, jid):
        """Take the claim ``row`` over (compare and set); True when it is this engine's now, held in this process."""
        runs = schema.schedule_runs
        if not self._hold(row.at, row.minion_id):
            return False
        try:
            with self.kstore.begin() as conn:
                done = conn.execute(
                    runs.update()
                    .where(runs.c.at == row.at)
                    .where(runs.c.minion_id == row.minion_id)
                    .where(runs.c.status == row.status)
                    .where(runs.c.holder.is_(None) if row.holder is None else runs.c.holder == row.holder)
                    .where(runs.c.jid.is_(None) if row.jid is None else runs.c.jid == row.jid)
                    .values(holder=self.node, status=status, jid=jid, recorded_at=_naive(self.clock()))
                ).rowcount
        except BaseException:
            self._release(row.at.replace(tzinfo=UTC), [row.minion_id])
            raise
        if not done:
            self._release(row.at.replace(tzinfo=UTC), [row.minion_id])
        return bool(done)

    def recover_claims(self, now=None, leader=False):
        """
        Settle the claims an engine left pending (``claimed`` or ``sending``:
        it died, was restarted or lost its lease in the middle of a
        transition) and that this process is not executing. A claim left
        ``claimed`` was never published: it runs now, or is recorded
        ``missed`` when later than grace. A claim left ``sending`` whose job
        went out (this process published it, or the relays' returner recorded
        its load or returns under its jid) is not sent again: its power event is
        recorded from the returns there are and the claim is ``done``. One
        whose job left no trace was never published: it runs now (or is
        missed). Each claim is taken over with a compare-and-set, so exactly
        one engine settles it. Return the outcomes (see :meth:`execute`).
        With ``leader``, raise :class:`LeadershipLost` before taking the next
        transition's claims over once this engine stepped down or is stopping.
        """
        now = now or self.clock()
        runs = schema.schedule_runs
        with self.kstore.connect() as conn:
            rows = conn.execute(sa.select(runs).where(runs.c.status.in_(PENDING)).order_by(runs.c.at, runs.c.minion_id))
            rows = rows.all()
        groups = {}
        for row in rows:
            with self._inflight_lock:
                if (row.at, row.minion_id) in self._inflight:
                    continue
            groups.setdefault((row.at, row.state, row.rule), []).append(row)
        outcomes = []
        for (naive_at, state, rule), group in groups.items():
            if leader:
                self._check_leading()
            at = naive_at.replace(tzinfo=UTC)
            sent, fresh = {}, []
            try:
                for row in group:
                    if row.status == SENDING and row.jid and self._was_published(row.jid):
                        if self._take(row, SENDING, row.jid):
                            sent[row.minion_id] = row.jid
                    elif self._take(row, CLAIMED, None):
                        fresh.append(row.minion_id)
                if sent:
                    outcomes.append(self._settle_sent(at, state, rule, sent))
                if fresh:
                    outcomes.append(self._rerun(at, state, rule, fresh, now))
            finally:
                self._release(at, list(sent) + fresh)
        return outcomes

    def _rerun(self, at, state, rule, kiosks, now):
        late = (now - at).total_seconds()
        outcome = {"at": clock.iso(at), "state": state, "rule": rule, "kiosks": kiosks, "recovered": True}
        if late > self.grace:
            self._finish(at, kiosks, "missed", None)
            self._report_missed(at, state, rule, kiosks, late)
            outcome["status"] = "missed"
            return outcome
        log.warning(
            "kiosk_scheduler: transition %s -> %s (%s) was left unpublished for %s; %s runs it now",
            at,
            state,
            rule,
            kiosks,
            self.node,
        )
        outcome["status"] = CLAIMED
        return self._send(at, state, rule, kiosks, outcome)

    def _settle_sent(self, at, state, rule, jid_of):
        """Record the transition whose jobs went out (``{kiosk: jid}``) without sending anything."""
        kiosks = sorted(jid_of)
        jids = sorted(set(jid_of.values()))
        outcome = {"at": clock.iso(at), "state": state, "rule": rule, "kiosks": kiosks, "recovered": True}
        log.warning(
            "kiosk_scheduler: transition %s -> %s (%s) for %s was published (jobs %s) but not settled; "
            "%s records it without sending it again",
            at,
            state,
            rule,
            kiosks,
            ", ".join(jids),
            self.node,
        )
        known = [self._sent[jid]["result"] for jid in jids if jid in self._sent and self._sent[jid]["result"]]
        if known:
            result = known[0]
            target = f"schedule:{rule or 'default'}"
        else:

            def before_publish(jobs, carriers):
                for key, job in jobs.items():
                    job["jid"] = next((jid_of[m] for m in carriers.get(key, ()) if m in jid_of), None)

            def recorded_returns(_opts, jobs, _timeout):
                return {key: self._returns_of(job.get("jid")) for key, job in jobs.items()}

            try:
                target, result = self._power(state, rule, kiosks, recorded_returns, before_publish)
            except DB_DOWN_ERRORS:
                raise
            except Exception as exc:  # pylint: disable=broad-except
                # Sent all the same (e.g. the kiosks left the inventory since).
                log.warning("kiosk_scheduler: no power event recorded for %s at %s: %s", kiosks, at, exc)
                self._finish(at, kiosks, "done", None)
                for jid in jids:
                    self._sent.pop(jid, None)
                outcome.update(status="done", event=None)
                return outcome
        self._settled(at, kiosks, target, result, jids)
        outcome.update(status="done", event=result["event"])
        return outcome

    # -- sweeps ----------------------------------------------------------

    def schedule_sweeps(self, event_id):
        """Schedule the verification sweeps of power event ``event_id`` at ``sweep_delays`` from now."""
        now = self.clock()
        for index, delay in enumerate(self.sweep_delays, start=1):
            self.scheduler.add_job(
                run_sweep,
                "date",
                run_date=now + datetime.timedelta(seconds=delay),
                id=f"{SWEEP_PREFIX}{event_id}:{index}",
                args=[self.key, event_id, index, index == len(self.sweep_delays)],
                replace_existing=True,
            )

    def sweep(self, event_id, index, final):
        """Run sweep ``index`` of power event ``event_id`` through the sweep hook."""
        self.sweep_hook(self, event_id, index, final)

    def _on_missed(self, event):
        """APScheduler gave up on a job (engine down for longer than the grace time)."""
        try:
            job = self.scheduler.get_job(event.job_id) if self.scheduler else None
            if event.job_id.startswith(POWER_PREFIX):
                _key, at, state, rule, minions = job.args if job else (None, None, None, None, None)
                if at is None:
                    log.warning("kiosk_scheduler: job %s missed", event.job_id)
                    return
                self.execute(datetime.datetime.fromisoformat(at), state, rule, minions)
        except DB_DOWN_ERRORS as exc:
            self._db_down(f"missed job {event.job_id}", exc)


def status(kstore, limit=10, key="kiosk", now=None):
    """
    Engine health as stored in the database (works from any process, on any
    master of masters): which master leads (``leader``: ``master``, ``since``,
    ``renewed``, ``expires``, ``alive`` at ``now``, default the current time;
    None before any engine ran), the last tick and plan, the next transitions,
    and what was executed, is in hand (``pending``: claims ``claimed`` or
    ``sending``) or was missed.
    """
    now = now or _utcnow()
    with kstore.connect() as conn:
        meta = {
            key: _get_meta(conn, key)
            for key in (
                "engine_started_at",
                "engine_last_tick",
                "engine_last_plan",
                "rules_revision",
                "inventory_revision",
            )
        }
        counts = dict(
            conn.execute(
                sa.select(schema.schedule_runs.c.status, sa.func.count()).group_by(schema.schedule_runs.c.status)
            ).all()
        )
        missed = conn.execute(
            sa.select(schema.schedule_runs)
            .where(schema.schedule_runs.c.status == "missed")
            .order_by(schema.schedule_runs.c.at.desc())
            .limit(limit)
        ).all()
        upcoming = []
        jobs = schema.scheduler_jobs
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.next_run_time, jobs.c.job)
            .where(jobs.c.id.like(POWER_PREFIX + "%"))
            .where(jobs.c.next_run_time.is_not(None))
            .order_by(jobs.c.next_run_time)
        )
        for row in rows:
            if len(upcoming) >= limit:
                break
            try:
                func_ref, document = decode_document(row.id, row.job, key=key)
                at = _next_run_time(row.next_run_time)
            except InvalidJobRow:
                continue  # not a valid job: the engine drops it, nobody shows it
            if JOB_FUNCTIONS[func_ref] is not run_transition:
                continue
            _key, _at, state, rule, _minions = document["args"]
            upcoming.append({"at": at.isoformat(timespec="seconds"), "state": state, "rule": rule})
        rows.close()
    last_tick = meta["engine_last_tick"]
    leader = None
    leases = schema.engine_leases
    with kstore.connect() as conn:
        lease = conn.execute(sa.select(leases).where(leases.c.key == key)).first()
    if lease is not None:
        leader = {
            "master": lease.holder,
            "since": clock.iso(lease.acquired_at),
            "renewed": clock.iso(lease.renewed_at),
            "expires": clock.iso(lease.expires_at),
            "alive": lease.expires_at > _naive(now),
        }
    age = None
    if last_tick:
        age = int((now - datetime.datetime.fromisoformat(last_tick).replace(tzinfo=UTC)).total_seconds())
    return {
        "leader": leader,
        "started_at": meta["engine_started_at"],
        "last_tick": last_tick,
        "seconds_since_tick": age,
        "last_plan": meta["engine_last_plan"],
        "rules_revision": int(meta["rules_revision"] or 0),
        "next_transitions": upcoming,
        "executed": counts.get("done", 0),
        "pending": sum(counts.get(name, 0) for name in PENDING),
        "failed": counts.get("failed", 0),
        "missed_count": counts.get("missed", 0),
        "missed": [{"at": clock.iso(r.at), "kiosk": r.minion_id, "state": r.state, "rule": r.rule} for r in missed],
    }
