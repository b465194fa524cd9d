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


def test_add_many_stores_all_in_list_order_with_one_revision_each(kstore):
    from salt_kiosk.power import schedule

    rules.add(kstore, "existing", **BASE)
    before = rules.rules_revision(kstore)
    specs = [
        {"name": f"bulk-{n:04d}", "state": "on", "days": "mon-fri", "start": "07:30", "end": 1080, "target": f"id:k{n}"}
        for n in range(1200)
    ]
    # Same priority and target kind: the later one of the list outranks the earlier, as if added one by one.
    specs.append({"name": "later-off", **BASE, "state": "off", "target": "id:k5"})
    specs.append({"name": "later-on", **BASE, "state": True, "target": "id:k5"})
    names = rules.add_many(kstore, specs)
    assert names == [spec["name"] for spec in specs]
    stored = {rule["name"]: rule for rule in rules.list_rules(kstore)}
    assert len(stored) == 1203 and stored["bulk-0007"]["end"] == "18:00" and stored["later-on"]["state"] == "on"
    revisions = [stored[name]["revision"] for name in names]
    assert revisions == list(range(before + 1, before + 1 + len(specs)))
    assert rules.rules_revision(kstore) == revisions[-1]
    kiosk = {"minion_id": "k5", "code": "K5", "campus": "east", "groups": []}
    campus = {"timezone": "Asia/Shanghai"}
    assert schedule.state_at(kiosk, campus, rules.load(kstore), "off", "2026-12-01T10:00")["rule"] == "later-on"


@pytest.mark.parametrize(
    "bad, message",
    [
        ([{"name": "a", **BASE}, {"name": "b", **BASE, "start": "25:00"}], r"rule 2 \(b\): start: "),
        ([{"name": "a", **BASE}, {"name": "a", **BASE}], r"rule 2 \(a\): name: 'a' is also rule 1"),
        ([{"name": "a", **BASE}, "not a rule"], r"rule 2: 'not a rule' is not a mapping"),
        ([{"name": "a", **BASE}, {"name": "b", **BASE, "colour": "red"}], r"rule 2 \(b\): unknown rule field"),
        ([{"name": "existing", **BASE}], r"1 rule\(s\) already exist, nothing stored: existing"),
        ([], r"rules: \[\] is not a list"),
        ("weekday", r"rules: 'weekday' is not a list"),
        ([{"name": f"r{n}", **BASE} for n in range(10001)], r"over the limit of 10000"),
    ],
)
def test_add_many_is_all_or_nothing_and_names_each_bad_rule(kstore, bad, message):
    rules.add(kstore, "existing", **BASE)
    revision = rules.rules_revision(kstore)
    with pytest.raises(KioskInputError, match=message):
        rules.add_many(kstore, bad)
    assert [rule["name"] for rule in rules.list_rules(kstore)] == ["existing"]
    assert rules.rules_revision(kstore) == revision


def test_remove_many_is_all_or_nothing(kstore):
    rules.add_many(kstore, [{"name": f"r{n}", **BASE} for n in range(700)])
    with pytest.raises(KioskInputError, match=r"no rule named 'missing', nothing removed"):
        rules.remove_many(kstore, ["r1", "missing"])
    with pytest.raises(KioskInputError, match=r"\['r2'\] are listed twice"):
        rules.remove_many(kstore, ["r2", "r2"])
    assert len(rules.list_rules(kstore)) == 700
    revision = rules.rules_revision(kstore)
    removed = rules.remove_many(kstore, [f"r{n}" for n in range(600)])
    assert [rule["name"] for rule in removed] == [f"r{n}" for n in range(600)]
    assert sorted(rule["name"] for rule in rules.list_rules(kstore)) == sorted(f"r{n}" for n in range(600, 700))
    assert rules.rules_revision(kstore) > revision
