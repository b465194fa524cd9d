"""
The leading master of masters dies: its salt-master (with the kiosk_scheduler
engine in it) is really stopped. The standby, which every relay's syndic also
serves (``syndic_master`` as a list), takes the engine's lease within 2 x tick,
executes the next due transition exactly once (magic packets counted on the
wire, one power event, one claim per kiosk), and its runners and CLI answer for
the whole fleet. When the old leader comes back it stands by; it reaches the
kiosks again once the relays' syndics for it are restarted (Salt #68915).
"""

import datetime
import time
import zoneinfo

import pytest

from tests.faults.conftest import (
    KIOSKS,
    MOMS,
    RELAYS,
    TICK,
    MagicPackets,
    engine_status,
    kiosks_answer,
    next_minute,
    record_figure,
    rule_args,
    wait_for,
)

pytestmark = pytest.mark.fleet

RULE = "faults-takeover"


def parse_iso(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_standby_master_of_masters_takes_over_and_runs_the_transition_once(campus):
    # Whichever master of masters leads now (the first to start, or the one
    # that won the lease after an earlier test's outage) is the one to die.
    leader_id, standby_id = campus.leader_and_standby(campus.mom.salt_run_cli(timeout=120))
    standby_addr = MOMS[standby_id]
    leader, standby = campus.moms[leader_id], campus.moms[standby_id]
    run_b = standby.salt_run_cli(timeout=120)
    cli_b = standby.salt_cli(timeout=30)
    # Both masters of masters reach every kiosk: the syndics serve both, and each
    # return goes back to the master that published the job.
    assert wait_for(lambda: kiosks_answer(cli_b), 90), "kiosks do not answer the standby"
    assert kiosks_answer(leader.salt_cli(timeout=30))

    start = next_minute(zoneinfo.ZoneInfo(campus.timezone))
    wire = MagicPackets(campus.wol_port)
    try:
        added = run_b.run(*rule_args(RULE, start, 30, "id:kiosk-e1"))
        assert added.returncode == 0, added

        # The leader dies well before the transition is due.
        leader.terminate()
        died = datetime.datetime.now(datetime.timezone.utc)
        took_over = wait_for(
            lambda: (
                (engine_status(run_b).get("leader") or {}).get("master") == standby_addr
                and engine_status(run_b)["leader"]["alive"]
            ),
            30,
        )
        assert took_over, engine_status(run_b)
        lease = engine_status(run_b)["leader"]
        takeover = (parse_iso(lease["since"]) - died).total_seconds()
        print(f"the standby took the lease {takeover:.1f} s after the leader stopped (bound {2 * TICK} s)")
        record_figure("takeover_s", takeover)
        # The lease's timestamps are whole seconds: allow that rounding.
        assert takeover <= 2 * TICK + 1

        # The transition falls due: every relay of the campus sends the packets once.
        wire.collect((start - datetime.datetime.now(start.tzinfo)).total_seconds() + 45)
    finally:
        wire.close()
    packets = [(sender, when) for _mac, sender, when in wire.of("kiosk-e1")]
    assert len(packets) == 3 * len(RELAYS), packets
    assert {addr for addr, _ in packets} == set(RELAYS.values())
    assert all(at >= start for _, at in packets)
    executed = (packets[0][1] - start).total_seconds()
    print(f"the standby executed the transition {executed:.1f} s after it fell due")
    record_figure("standby_executed_after_due_s", executed)

    events = wait_for(
        lambda: [e for e in run_b.run("kiosk_power.events", "kiosk=kiosk-e1", "limit=10").data if e["rule"] == RULE],
        30,
    )
    # Recorded before the checks, so that a bad run shows in bench/failover.py.
    record_figure("double_power_actions", int(len(packets) > 3 * len(RELAYS)) + max(0, len(events) - 1))
    assert len(events) == 1, events
    assert events[0]["source"] == "schedule" and events[0]["kiosks"]["kiosk-e1"]["ok"] is True, events[0]
    claims = campus.sql(f"SELECT minion_id, status FROM {{db}}.kiosk_schedule_runs WHERE rule = '{RULE}'")
    assert [tuple(row) for row in claims] == [("kiosk-e1", "done")]

    # The standby's runners and CLI answer for the fleet.
    assert kiosks_answer(cli_b)
    plan = run_b.run("kiosk_power.plan", "id:kiosk-e1", f"since={start.date().isoformat()}")
    assert plan.returncode == 0 and plan.data["kiosk-e1"]["transitions"][0]["rule"] == RULE, plan
    dry = run_b.run("kiosk_power.shutdown", "campus:east", "test=True")
    assert dry.returncode == 0 and {m: k["ok"] for m, k in dry.data["kiosks"].items()} == dict.fromkeys(KIOSKS, True)
    assert run_b.run("kiosk_power.rule_remove", RULE).returncode == 0

    # The old leader comes back and stands by.
    leader.start()
    time.sleep(2 * TICK)
    status = engine_status(run_b)
    assert status["leader"]["master"] == standby_addr and status["leader"]["alive"], status
    # Salt 3008.4 with tcp: a salt-syndic keeps its request channel to a master
    # of masters that restarted but never subscribes to its new publisher again,
    # so the restarted master reaches no kiosk (Salt #68915 reports the same for
    # zeromq; multi-syndic's PR #14690 warns that down masters block a syndic).
    assert not wait_for(lambda: kiosks_answer(leader.salt_cli(timeout=10)), 20, step=2)
    # Restarting the relays' syndics for that master brings it back.
    campus.restart_syndics_for(leader_id)
    back = time.monotonic()
    assert wait_for(lambda: kiosks_answer(leader.salt_cli(timeout=30)), 90), "the old leader is not served again"
    print(
        f"the restarted master of masters reached the kiosks {time.monotonic() - back:.1f} s after its syndics restarted"
    )
    assert engine_status(leader.salt_run_cli(timeout=60))["leader"]["master"] == standby_addr
