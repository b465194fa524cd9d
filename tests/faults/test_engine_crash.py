"""
The engine's two hard faults on the real fleet, on one timeline:

1. The master of masters leading the engine is SIGKILLed (with every process it
   started) in the middle of a transition: its claim is already ``sending``,
   the publish may or may not have gone out. The standby takes over, settles
   the claim (re-sending only a job that left no trace in the returner's
   tables), and the old leader is restarted. The kiosk is powered once:
   exactly ``repeat`` magic packets per relay, one power event.
2. A minute later the private MariaDB is SIGKILLed just before the next
   transition falls due and started again 20 s after it: the engine keeps
   running (no traceback in the master's log), and the transition runs once
   after the database returns, within ``grace``.

Transitions later than ``grace`` when the database returns are recorded as
missed: tests/functional/test_engine_outage_mariadb.py shows that with a
really killed MariaDB (one minute of fleet time per case is not spent twice).
"""

import datetime
import os
import time
import zoneinfo

import pytest

from tests.faults.conftest import (
    MOMS,
    RELAYS,
    MagicPackets,
    engine_status,
    kiosks_answer,
    next_minute,
    record_figure,
    rule_args,
    wait_for,
)

pytestmark = pytest.mark.fleet

CRASH, OUTAGE = "faults-crash", "faults-outage"


def claim(campus, rule):
    rows = campus.sql(f"SELECT minion_id, status FROM {{db}}.kiosk_schedule_runs WHERE rule = '{rule}'")
    return [tuple(row) for row in rows]


ENGINE_PROCESS = "Engine(salt.loaded.ext.engines.kiosk_scheduler)"


def log_size(factory):
    path = os.path.join(factory.config["root_dir"], factory.config["log_file"])
    return path, os.path.getsize(path) if os.path.exists(path) else 0


def engine_records(path, offset):
    """The engine process's log records (each with its continuation lines) written after ``offset``."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        handle.seek(offset)
        records, current = [], None
        for line in handle:
            if line.startswith("[20"):
                current = [line] if ENGINE_PROCESS in line else None
                if current is not None:
                    records.append(current)
            elif current is not None:
                current.append(line)
    return ["".join(record) for record in records]


def test_a_crash_mid_transition_and_a_dead_database_power_each_kiosk_once(campus):
    leader_id, standby_id = campus.leader_and_standby(campus.mom.salt_run_cli(timeout=120))
    leader, standby = campus.moms[leader_id], campus.moms[standby_id]
    run_b = standby.salt_run_cli(timeout=120)
    assert wait_for(lambda: kiosks_answer(standby.salt_cli(timeout=30)), 90)
    assert kiosks_answer(leader.salt_cli(timeout=30))

    first = next_minute(zoneinfo.ZoneInfo(campus.timezone))
    second = first + datetime.timedelta(minutes=1)
    wire = MagicPackets(campus.wol_port)
    try:
        assert run_b.run(*rule_args(CRASH, first, 10, "id:kiosk-e1")).returncode == 0
        assert run_b.run(*rule_args(OUTAGE, second, 10, "id:kiosk-e2")).returncode == 0

        # 1. Kill the leader as soon as its claim for kiosk-e1 is being sent.
        deadline = time.monotonic() + (first - datetime.datetime.now(first.tzinfo)).total_seconds() + 30
        state = []
        while time.monotonic() < deadline:
            state = claim(campus, CRASH)
            if state and state[0][1] != "claimed":
                break
            time.sleep(0.01)
        print(f"killing {leader_id} with the claim {state}")
        assert state and state[0][1] in ("sending", "done"), state
        campus.kill_mom(leader_id)
        killed = time.monotonic()
        # Restarted at once; its syndics are restarted with it (see test_mom_down).
        leader.start()
        campus.restart_syndics_for(leader_id)
        done = wait_for(lambda: claim(campus, CRASH) == [("kiosk-e1", "done")], 30)
        assert done, claim(campus, CRASH)
        print(f"the claim was settled {time.monotonic() - killed:.1f} s after the kill")
        lead = wait_for(lambda: (engine_status(run_b).get("leader") or {}).get("alive") and engine_status(run_b), 30)
        assert lead and lead["leader"]["master"] in MOMS.values(), lead

        # 2. The database dies 10 s before kiosk-e2's transition and comes back 20 s after it.
        logs = [log_size(mom) for mom in (leader, standby)]
        wait = (second - datetime.datetime.now(second.tzinfo)).total_seconds() - 10
        wire.collect(max(0.0, wait))
        campus.mariadb.kill()
        wire.collect(30)
        assert leader.is_running() and standby.is_running()
        campus.mariadb.start()
        wire.collect(40)
    finally:
        wire.close()

    for log_path, before in logs:
        records = engine_records(log_path, before)
        # No traceback storm: no traceback from the engine, a few warnings per master.
        assert not [r for r in records if "Traceback" in r], records[-20:]
        loud = [r for r in records if "][WARNING " in r or "][ERROR " in r]
        assert len(loud) <= 6, loud

    for minion, rule in (("kiosk-e1", CRASH), ("kiosk-e2", OUTAGE)):
        packets = wire.of(minion)
        events = [e for e in run_b.run("kiosk_power.events", f"kiosk={minion}", "limit=10").data if e["rule"] == rule]
        record_figure("double_power_actions", int(len(packets) > 3 * len(RELAYS)) + max(0, len(events) - 1))
        assert len(packets) == 3 * len(RELAYS), (minion, packets)
        assert {sender for _mac, sender, _at in packets} == set(RELAYS.values())
        assert len(events) == 1, (minion, events)
        assert claim(campus, rule) == [(minion, "done")]
    late = (min(at for _mac, _sender, at in wire.of("kiosk-e2")) - second).total_seconds()
    print(f"kiosk-e2's transition, due while the database was down, ran {late:.0f} s late")
    assert late <= 60  # the fleet's grace

    for rule in (CRASH, OUTAGE):
        assert run_b.run("kiosk_power.rule_remove", rule).returncode == 0
    # The restarted master is served again (its syndics were restarted with it).
    assert wait_for(lambda: kiosks_answer(leader.salt_cli(timeout=30)), 90)
