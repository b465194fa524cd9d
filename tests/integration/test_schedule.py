"""
Power rules and schedules through the real master of masters: rules via
salt-run (with what the CLI's YAML makes of on/off and 18:00), plans, rules as
states from the central master's own minion, and the kiosk_scheduler engine
running in the master of masters executing a transition through the tree.
"""

import datetime
import socket
import time
import zoneinfo

import pytest

from salt_kiosk.node import wol
from tests.conftest import KIOSK_NET

pytestmark = pytest.mark.fleet


@pytest.fixture
def run(fleet):
    return fleet.salt_run_cli()


@pytest.fixture
def cleanup_rules(run):
    names = []
    yield names
    for name in names:
        run.run("kiosk_power.rule_remove", name)


def test_rule_crud_and_plan_from_the_cli(fleet, fleet_inventory, run, cleanup_rules):
    cleanup_rules.extend(["it-weekday", "it-holiday"])
    # state=on arrives as True and end=18:00 as 1080 after the CLI's YAML parsing.
    added = run.run(
        "kiosk_power.rule_add",
        "it-weekday",
        "state=on",
        "days=mon-fri",
        "start=07:30",
        "end=18:00",
        "target=campus:west",
        "valid_from=2027-01-01",
        "valid_until=2027-12-31",
    )
    assert added.returncode == 0, added
    assert (added.data["state"], added.data["start"], added.data["end"]) == ("on", "07:30", "18:00")
    run.run(
        "kiosk_power.rule_add",
        "it-holiday",
        "state=off",
        "dates=2027-01-01",
        "start=00:00",
        "end=24:00",
        "priority=10",
        "target=campus:west",
    )
    plan = run.run("kiosk_power.plan", "id:kiosk-w1", "since=2027-01-01", "until=2027-01-03")
    assert plan.returncode == 0, plan
    assert plan.data["kiosk-w1"]["transitions"] == []  # Friday holiday, then Saturday
    plan = run.run("kiosk_power.plan", "campus:west", "since=2027-01-04", "until=2027-01-05")
    assert plan.data["kiosk-w2"]["transitions"] == [
        {"at": "2027-01-04T07:30+01:00", "state": "on", "rule": "it-weekday"},
        {"at": "2027-01-04T18:00+01:00", "state": "off", "rule": None},
    ]
    state = run.run("kiosk_power.state_at", "kiosk-w1", "when=2027-01-01T10:00")
    assert (state.data["state"], state.data["rule"]) == ("off", "it-holiday")
    updated = run.run("kiosk_power.rule_update", "it-weekday", "end=19:00")
    assert updated.data["changed"] is True and updated.data["new"]["end"] == "19:00"
    listed = run.run("kiosk_power.rule_list", "target=campus:west")
    assert [r["name"] for r in listed.data] == ["it-holiday", "it-weekday"]
    yaml_out = fleet.mom.salt_run_cli().run(
        "kiosk_power.plan", "id:kiosk-w1", "since=2027-01-04", "until=2027-01-05", "--out=yaml"
    )
    assert "state: 'on'" in yaml_out.stdout or "state: on" in yaml_out.stdout


def test_bad_rules_are_refused_with_the_field_named(fleet, fleet_inventory, run):
    before = run.run("kiosk_power.rule_list").data
    for args, message in (
        (["start=24:01"], "start: 1441 (read as 24:01) is not valid"),
        (["start=7.30"], "start: 7.3 is not valid"),
        (["days=mon-fry"], "days: 'mon-fry' is not valid"),
        (["target=site:x"], "is not a kiosk target"),
        (["priority=high"], "priority: 'high' is not valid"),
    ):
        base = {"state": "state=on", "days": "days=mon-fri", "start": "start=07:30", "end": "end=18:00"}
        for arg in args:
            base[arg.split("=")[0]] = arg
        ret = run.run("kiosk_power.rule_add", "it-bad", *base.values())
        assert message in ret.stdout, ret
    assert "name: no rule named 'it-missing'" in run.run("kiosk_power.rule_remove", "it-missing").stdout
    assert run.run("kiosk_power.rule_list").data == before


def test_rules_as_states_from_pillar(fleet, fleet_inventory, run, cleanup_rules):
    cleanup_rules.append("pillar-late-clinic")
    sls = """
{% for name, rule in pillar.get('kiosk_rules', {}).items() %}
{{ name }}:
  kiosk_power.rule_present:
{% for key, value in rule.items() %}
    - {{ 'power' if key == 'state' else key }}: {{ value|json }}
{% endfor %}
{% endfor %}
"""
    pillar = """
kiosk_rules:
  pillar-late-clinic:
    state: "on"
    days: sat
    start: "09:00"
    end: "{end}"
    target: "id:kiosk-e2"
    priority: 5
    valid_from: "2027-01-01"
"""
    salt = fleet.salt_cli()
    with (
        fleet.mom.state_tree.base.temp_file("kiosk_rules.sls", sls),
        fleet.mom.pillar_tree.base.temp_file("top.sls", "base:\n  central:\n    - kiosk_rules\n"),
        fleet.mom.pillar_tree.base.temp_file("kiosk_rules.sls", pillar.replace("{end}", "12:00")) as pillar_file,
    ):
        salt.run("saltutil.refresh_pillar", "wait=True", minion_tgt="central")
        first = salt.run("state.apply", "kiosk_rules", minion_tgt="central")
        (result,) = first.data.values()
        assert first.returncode == 0, result["comment"]
        assert result["result"] is True and result["changes"]["new"]["end"] == "12:00"
        second = salt.run("state.apply", "kiosk_rules", minion_tgt="central")
        (result,) = second.data.values()
        assert result["result"] is True and result["changes"] == {}
        dry = salt.run("state.apply", "kiosk_rules", "test=True", minion_tgt="central")
        (result,) = dry.data.values()
        assert result["result"] is True and result["changes"] == {}
        plan = run.run("kiosk_power.plan", "id:kiosk-e2", "since=2027-01-02", "until=2027-01-03")
        assert plan.data["kiosk-e2"]["transitions"][1]["at"] == "2027-01-02T12:00+08:00"

        pillar_file.write_text(pillar.replace("{end}", "13:30"))
        salt.run("saltutil.refresh_pillar", "wait=True", minion_tgt="central")
        dry = salt.run("state.apply", "kiosk_rules", "test=True", minion_tgt="central")
        (result,) = dry.data.values()
        assert result["result"] is None and result["changes"] == {"end": {"old": "12:00", "new": "13:30"}}
        assert run.run("kiosk_power.rule_list", "target=id:kiosk-e2").data[0]["end"] == "12:00"
        salt.run("state.apply", "kiosk_rules", minion_tgt="central")
        plan = run.run("kiosk_power.plan", "id:kiosk-e2", "since=2027-01-02", "until=2027-01-03")
        assert plan.data["kiosk-e2"]["transitions"][1]["at"] == "2027-01-02T13:30+08:00"


def test_state_with_bad_rule_fails_naming_the_field(fleet, fleet_inventory):
    sls = "bad-rule:\n  kiosk_power.rule_present:\n    - power: 'on'\n    - days: mon-fri\n    - start: '25:00'\n    - end: '18:00'\n"
    with fleet.mom.state_tree.base.temp_file("kiosk_bad_rule.sls", sls):
        ret = fleet.salt_cli().run("state.apply", "kiosk_bad_rule", minion_tgt="central")
    (result,) = ret.data.values()
    assert result["result"] is False
    assert "start: '25:00' is not valid" in result["comment"]


def test_engine_executes_a_transition_through_the_tree(fleet, fleet_inventory, run, cleanup_rules):
    cleanup_rules.append("it-engine")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", fleet.wol_port))
    sock.settimeout(1)
    try:
        tz = zoneinfo.ZoneInfo("Europe/Berlin")
        now = datetime.datetime.now(tz)
        start = (now + datetime.timedelta(minutes=1)).replace(second=0, microsecond=0)
        if (start - now).total_seconds() < 20:
            start += datetime.timedelta(minutes=1)
        end = start + datetime.timedelta(minutes=30)
        added = run.run(
            "kiosk_power.rule_add",
            "it-engine",
            "state=on",
            f"dates={start.date().isoformat()}",
            f"start={start:%H:%M}",
            f"end={end:%H:%M}",
            "target=id:kiosk-w2",
            "priority=50",
        )
        assert added.returncode == 0, added
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            status = run.run("kiosk_power.engine_status").data
            if any(t["rule"] == "it-engine" for t in status["next_transitions"]):
                break
            time.sleep(1)
        assert any(t["rule"] == "it-engine" for t in status["next_transitions"]), status
        packets = []
        deadline = time.monotonic() + (start - datetime.datetime.now(tz)).total_seconds() + 60
        mac = KIOSK_NET["kiosk-w2"][1]
        while time.monotonic() < deadline and len([p for p in packets if wol.is_magic_packet(p[0], mac)]) < 6:
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            packets.append((data, addr[0], datetime.datetime.now(tz)))
        woke = [p for p in packets if wol.is_magic_packet(p[0], mac)]
        assert {addr for _d, addr, _t in woke} == {fleet.relay_address["relay-w1"], fleet.relay_address["relay-w2"]}
        assert len(woke) == 6
        assert woke[0][2] >= start
    finally:
        sock.close()
    # The event is recorded once the relays' answers are in, just after the packets.
    deadline = time.monotonic() + 30
    events = []
    while time.monotonic() < deadline and not any(e["rule"] == "it-engine" for e in events):
        time.sleep(1)
        events = run.run("kiosk_power.events", "kiosk=kiosk-w2", "limit=5").data
    event = next(e for e in events if e["rule"] == "it-engine")
    assert event["source"] == "schedule" and event["rule"] == "it-engine" and event["user"] == "kiosk_scheduler"
    assert event["kiosks"]["kiosk-w2"]["ok"] is True
    status = run.run("kiosk_power.engine_status").data
    assert status["executed"] >= 1 and status["seconds_since_tick"] < 30
