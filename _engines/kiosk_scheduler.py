"""
The power schedule engine for the master of masters.

Runs APScheduler with its job store in the kiosk database (``kiosk:db``; the
embedded SQLite file by default), materialises the upcoming power transitions
of every kiosk and executes each through Wake-on-LAN / shutdown (the same paths
as ``kiosk_power.wake`` and ``kiosk_power.shutdown``). See
:mod:`salt_kiosk.power.engine` for the exactly-once and catch-up rules.

The jobs are stored as plain JSON data in ``kiosk_scheduler_jobs`` (never
pickles): a stored job may only name one of the engine's own job functions,
and a row that does not validate is logged and deleted, not run.

Configuration (master config):

.. code-block:: yaml

    engines:
      - kiosk_scheduler:
          grace: 600              # seconds a late transition may still run; older ones are recorded as missed
          horizon_hours: 48       # how far ahead transitions are scheduled
          tick: 30                # heartbeat seconds (engine health, revision checks)
          replan_interval: 3600   # re-plan at least this often (seconds)
          sweep_delays: [300, 600, 900]   # verification sweeps after each executed transition
          shutdown_delay: 60      # seconds kiosks wait before powering off
          power_timeout: 30       # seconds a transition waits for the relays' and kiosks' answers
          lease: 45               # leadership lease seconds (>= tick; default 1.5 x tick)
          peers: [10.0.0.11]      # the other masters of masters' master_id (a standby setup)
          peers_wait: 60          # seconds to wait at start for a peer to appear in the database

Every master of masters may run the engine over the same database: only the
one holding the lease executes (see :mod:`salt_kiosk.power.engine`); a standby
takes over within ``lease + tick / 2`` seconds of the leader's last renewal.
With ``peers``, the engine refuses to start on a database no peer has ever
used, or on the embedded SQLite file (see :mod:`salt_kiosk.power.peers`): a
standby on another database would execute every transition a second time.
A transition interrupted by a crash is settled by the next leader: sent once,
never twice (the claim records the job id before the publish).

While the database does not answer the engine keeps running: one warning when
it goes and one when it is back (no traceback per tick); transitions that fell
due meanwhile run once on its return when still within ``grace``, later ones
are recorded as missed.

Events listened to: ``kiosk/rules/changed`` and ``kiosk/inventory/changed``
(re-plan, once per burst: when no other change came for half a second, at
most 5 s after the first); ``kiosk/power/wake|shutdown|reboot`` from the runners (the
verification sweeps of manual power events are scheduled too).

Events fired on the master bus:

``kiosk/power/wake``, ``kiosk/power/shutdown``
    After each executed transition (``user: kiosk_scheduler``).

``kiosk/engine/leader``
    This master started leading or stepped down: ``{"leader", "master",
    "role": "leader"|"standby"}`` (``leader`` is null when it stepped down
    because its lease expired while the database did not answer).

``kiosk/power/missed``
    A transition older than ``grace`` when the engine could run it:
    ``{"at", "state", "rule", "kiosks", "late"}``.

``kiosk/power/sweep``
    A verification sweep of a power event ran: ``{"event", "sweep", "final",
    "ok", "wrong"}`` (see ``kiosk_sweep.verify``, which also fires
    ``kiosk/alert/power/<kiosk id>`` and ``kiosk/power/verified`` after the
    final sweep).
"""

import logging
import time

try:
    import salt.utils.event

    from salt_kiosk import events as kevents
    from salt_kiosk.db import store
    from salt_kiosk.power import engine as scheduler
    from salt_kiosk.power import peers as kpeers

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

log = logging.getLogger(__name__)

__virtualname__ = "kiosk_scheduler"

REPLAN_TAGS = ("kiosk/rules/changed", "kiosk/inventory/changed")
MANUAL_POWER_TAGS = ("kiosk/power/wake", "kiosk/power/shutdown", "kiosk/power/reboot")


def __virtual__():
    if not HAS_LIB:
        return (False, f"the salt_kiosk library or APScheduler is not importable ({_IMPORT_ERROR})")
    return __virtualname__


def _fire(data, tag):
    kevents.fire_master(__opts__, data, tag)


def start(
    grace=600,
    horizon_hours=48,
    tick=30,
    replan_interval=3600,
    sweep_delays=(300, 600, 900),
    shutdown_delay=60,
    power_timeout=30,
    lease=None,
    peers=None,
    peers_wait=60,
):
    """
    Run the engine until the master stops. With ``peers`` it first checks that
    this master uses the same database as its peers, and refuses to start
    (the error names the setting) when it does not.
    """
    engine = scheduler.Engine(
        __opts__,
        grace=grace,
        horizon_hours=horizon_hours,
        tick=tick,
        replan_interval=replan_interval,
        sweep_delays=sweep_delays,
        shutdown_delay=shutdown_delay,
        power_timeout=power_timeout,
        fire=_fire,
        lease=lease,
    )
    kpeers.check(store.open_store(__opts__), engine.node, peers, wait=peers_wait)
    engine.start()
    try:
        burst = kevents.Burst()
        with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=True) as bus:
            while True:
                event = bus.get_event(wait=burst.wait(5), tag="kiosk/", match_type="startswith", full=True)
                reason = burst.take(time.monotonic())
                if reason:
                    try:
                        engine.replan(reason)
                    except Exception as exc:  # pylint: disable=broad-except
                        log.error("kiosk_scheduler: re-planning after %s failed: %s", reason, exc)
                if not event:
                    continue
                try:
                    if event.get("tag") in REPLAN_TAGS:
                        # A burst of changes (a thousand rule_add calls) re-plans once.
                        burst.note(event["tag"], time.monotonic())
                    elif (
                        event.get("tag") in MANUAL_POWER_TAGS
                        and (event.get("data") or {}).get("user") != "kiosk_scheduler"
                    ):
                        # Manual power events from the runners are verified too.
                        engine.schedule_sweeps(event["data"]["event"])
                except Exception as exc:  # pylint: disable=broad-except
                    log.error("kiosk_scheduler: handling %s failed: %s", event.get("tag"), exc)
    finally:
        engine.stop()
