import datetime

import pytest

from salt_kiosk.errors import KioskInputError
from salt_kiosk.power import rules

BASE = {"state": "on", "days": "mon-fri", "start": "07:30", "end": "18:00"}


def test_add_normalises_yaml_values(kstore):
    # What the Salt CLI makes of state=on end=18:00: True and 1080 minutes.
    rule = rules.add(kstore, "weekday", state=True, days="mon-fri", start="07:30", end=1080, target="*")
    assert {k: rule[k] for k in ("state", "days", "start", "end", "target", "priority")} == {
        "state": "on",
        "days": "mon,tue,wed,thu,fri",
        "start": "07:30",
        "end": "18:00",
        "target": "*",
        "priority": 0,
    }
    holiday = rules.add(
        kstore, "newyear", state=False, dates="2026-12-31..2027-01-02", start="00:00", end="24:00", priority="10"
    )
    assert holiday["dates"] == ["2026-12-31", "2027-01-01", "2027-01-02"]
    assert holiday["revision"] > rule["revision"]
    assert [r["name"] for r in rules.list_rules(kstore)] == ["newyear", "weekday"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"start": "24:01"}, "start: '24:01' is not valid"),
        ({"end": "24:01"}, "end: '24:01' is not valid"),
        ({"start": 7.30}, "start: 7.3 is not valid"),
        ({"end": 1441}, r"end: 1441 \(read as 24:01\) is not valid"),
        ({"start": "7:75"}, "start: '7:75'"),
        ({"days": "mon-fry"}, "days: 'mon-fry' is not valid"),
        ({"days": None}, "days/dates: a rule needs days"),
        ({"days": "", "dates": []}, "days/dates"),
        ({"dates": ["2026-02-30"]}, "dates: '2026-02-30' is not valid"),
        (
            {"valid_from": "2026-12-01", "valid_until": "2026-11-01"},
            "valid_until: 2026-11-01 is before valid_from 2026-12-01",
        ),
        ({"target": "site:east"}, "target: 'site:east' is not a kiosk target"),
        ({"priority": "high"}, "priority: 'high' is not valid"),
        ({"priority": 1.5}, "priority: 1.5 is not valid"),
        ({"state": "maybe"}, "state: 'maybe' is not valid"),
        ({"end": "07:30"}, "end: 07:30 equals start"),
        ({"bogus": 1}, "unknown rule field"),
    ],
)
def test_bad_rules_are_refused_and_nothing_stored(kstore, change, message):
    fields = dict(BASE, **change)
    with pytest.raises(KioskInputError, match=message):
        rules.add(kstore, "bad", **fields)
    assert rules.list_rules(kstore) == []
    assert rules.rules_revision(kstore) == 0


def test_duplicate_and_missing_names(kstore):
    rules.add(kstore, "weekday", **BASE)
    with pytest.raises(KioskInputError, match="name: a rule named 'weekday' already exists"):
        rules.add(kstore, "weekday", **BASE)
    with pytest.raises(KioskInputError, match="name: no rule named 'nope'"):
        rules.update(kstore, "nope", end="19:00")
    with pytest.raises(KioskInputError, match="name: no rule named 'nope'"):
        rules.remove(kstore, "nope")


def test_update_checks_the_merged_rule_and_keeps_revision_when_unchanged(kstore):
    rules.add(kstore, "weekday", **BASE)
    rev = rules.rules_revision(kstore)
    old, new = rules.update(kstore, "weekday", end="18:00")
    assert old == new and rules.rules_revision(kstore) == rev
    with pytest.raises(KioskInputError, match="end: 07:30 equals start"):
        rules.update(kstore, "weekday", end="07:30")
    old, new = rules.update(kstore, "weekday", end="19:00", priority=3)
    assert (old["end"], new["end"], new["priority"]) == ("18:00", "19:00", 3)
    assert rules.rules_revision(kstore) > rev
    removed = rules.remove(kstore, "weekday")
    assert removed["name"] == "weekday" and rules.list_rules(kstore) == []


def test_day_parsing():
    assert rules.parse_days("fri-mon") == [0, 4, 5, 6]
    assert rules.parse_days(["Sat", "sunday"]) == [5, 6]
    assert rules.parse_days("daily") == list(range(7))
    assert rules.parse_time(0, "start") == 0 and rules.parse_time("24:00", "end", allow_24=True) == 1440
    assert rules.parse_date(datetime.date(2026, 1, 2), "valid_from") == datetime.date(2026, 1, 2)


def test_priority_range(kstore):
    for bad in (2**31, -(2**31) - 1, 10**20, "99999999999"):
        with pytest.raises(KioskInputError, match="priority: .* is not valid"):
            rules.add(kstore, "p", **dict(BASE, priority=bad))
    assert rules.add(kstore, "p", **dict(BASE, priority=2**31 - 1))["priority"] == 2**31 - 1


def test_editing_a_rule_does_not_make_it_outrank_newer_rules(kstore):
    from salt_kiosk.power import schedule

    rules.add(kstore, "weekday", **BASE)
    rules.add(kstore, "closure", state="off", days="mon-fri", start="00:00", end="24:00")
    kiosk = {"minion_id": "k", "code": "K", "campus": "east", "groups": []}
    campus = {"timezone": "Asia/Shanghai"}
    assert schedule.state_at(kiosk, campus, rules.load(kstore), "off", "2026-12-01T10:00")["rule"] == "closure"
    rules.update(kstore, "weekday", end="19:00")
    assert schedule.state_at(kiosk, campus, rules.load(kstore), "off", "2026-12-01T10:00")["rule"] == "closure"
