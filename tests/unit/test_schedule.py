import datetime

import pytest

from salt_kiosk.errors import KioskInputError
from salt_kiosk.power import schedule
from salt_kiosk.power.rules import Rule

CAMPUSES = {"east": {"timezone": "Asia/Shanghai"}, "west": {"timezone": "Europe/Berlin"}}
W1 = {"minion_id": "kiosk-w1", "code": "W1", "campus": "west", "groups": ["opd"]}
E1 = {"minion_id": "kiosk-e1", "code": "E1", "campus": "east", "groups": []}


def R(name, revision=1, **fields):  # noqa: N802
    return Rule.from_fields(name, revision=revision, **fields)


WEEKDAY = R("weekday", 1, state="on", days="mon-fri", start="07:30", end="18:00")


def transitions(kiosk, rules, since, until, default="off"):
    plan = schedule.plan([kiosk], CAMPUSES, rules, default, since, until)
    return [(t["at"], t["state"], t["rule"]) for t in plan[kiosk["minion_id"]]["transitions"]]


def test_weekday_window_in_each_campus_time_zone():
    # 2026-12-01 is a Tuesday.
    assert transitions(W1, [WEEKDAY], "2026-12-01", "2026-12-02") == [
        ("2026-12-01T07:30+01:00", "on", "weekday"),
        ("2026-12-01T18:00+01:00", "off", None),
    ]
    assert transitions(E1, [WEEKDAY], "2026-12-01", "2026-12-02") == [
        ("2026-12-01T07:30+08:00", "on", "weekday"),
        ("2026-12-01T18:00+08:00", "off", None),
    ]


def test_holiday_off_outranks_weekday_on():
    holiday = R("christmas", 2, state="off", dates=["2026-12-25"], start="00:00", end="24:00", priority=10)
    assert transitions(W1, [WEEKDAY, holiday], "2026-12-24", "2026-12-26") == [
        ("2026-12-24T07:30+01:00", "on", "weekday"),
        ("2026-12-24T18:00+01:00", "off", None),
    ]


def test_ties_go_to_more_specific_target_then_newer_rule():
    campus_off = R("campus-off", 5, state="off", days="tue", start="12:00", end="13:00", target="campus:west")
    group_on = R("group-on", 2, state="on", days="tue", start="12:00", end="13:00", target="group:opd")
    # Same priority: group beats campus although the campus rule is newer.
    assert transitions(W1, [WEEKDAY, campus_off, group_on], "2026-12-01T11:00", "2026-12-01T14:00") == []
    plan = schedule.plan(
        [W1], CAMPUSES, [WEEKDAY, campus_off, group_on], "off", "2026-12-01T11:00", "2026-12-01T14:00", timeline=True
    )
    assert [seg["rule"] for seg in plan["kiosk-w1"]["timeline"]] == ["weekday", "group-on", "weekday"]
    older = R("older", 3, state="off", days="tue", start="12:00", end="13:00")
    newer = R("newer", 4, state="on", days="tue", start="12:00", end="13:00")
    state = schedule.state_at(W1, CAMPUSES["west"], [older, newer], "off", "2026-12-01T12:30")
    assert (state["state"], state["rule"]) == ("on", "newer")
    higher = R("higher", 1, state="off", days="tue", start="12:00", end="13:00", priority=1, target="*")
    exact = R("exact", 9, state="on", days="tue", start="12:00", end="13:00", target="id:kiosk-w1")
    assert schedule.state_at(W1, CAMPUSES["west"], [higher, exact], "off", "2026-12-01T12:30")["rule"] == "higher"


def test_window_crossing_midnight_and_whole_day():
    night = R("night", 1, state="on", days="fri", start="22:00", end="06:00")
    assert transitions(W1, [night], "2026-12-04", "2026-12-06") == [
        ("2026-12-04T22:00+01:00", "on", "night"),
        ("2026-12-05T06:00+01:00", "off", None),
    ]
    day = R("allday", 1, state="on", dates=["2026-12-05"], start="00:00", end="24:00")
    assert transitions(W1, [day], "2026-12-04", "2026-12-07") == [
        ("2026-12-05T00:00+01:00", "on", "allday"),
        ("2026-12-06T00:00+01:00", "off", None),
    ]


def test_dst_skipped_hour_and_repeated_hour():
    # Europe/Berlin: 2026-03-29 02:00 -> 03:00; 2026-10-25 03:00 -> 02:00.
    inside_gap = R("gap", 1, state="on", days="sun", start="02:30", end="04:00")
    assert transitions(W1, [inside_gap], "2026-03-29", "2026-03-30") == [
        ("2026-03-29T03:00+02:00", "on", "gap"),
        ("2026-03-29T04:00+02:00", "off", None),
    ]
    only_gap = R("nothing", 1, state="on", days="sun", start="02:00", end="03:00")
    assert transitions(W1, [only_gap], "2026-03-29", "2026-03-30") == []
    repeated = R("repeat", 1, state="on", days="sun", start="02:30", end="05:00")
    assert transitions(W1, [repeated], "2026-10-25", "2026-10-26") == [
        ("2026-10-25T02:30+02:00", "on", "repeat"),
        ("2026-10-25T05:00+01:00", "off", None),
    ]
    # The repeated day is 25 hours long: a whole-day rule lasts 25 hours.
    whole = R("whole", 1, state="on", dates=["2026-10-25"], start="00:00", end="24:00")
    plan = schedule.plan([W1], CAMPUSES, [whole], "off", "2026-10-25", "2026-10-26", timeline=True)
    seg = plan["kiosk-w1"]["timeline"][0]
    assert (seg["from"], seg["until"], seg["state"]) == ("2026-10-25T00:00+02:00", "2026-10-26T00:00+01:00", "on")


def test_validity_dates_and_default_state():
    limited = R(
        "limited",
        1,
        state="off",
        days="daily",
        start="00:00",
        end="24:00",
        valid_from="2026-12-02",
        valid_until="2026-12-02",
    )
    assert transitions(W1, [limited], "2026-12-01", "2026-12-04", default="on") == [
        ("2026-12-02T00:00+01:00", "off", "limited"),
        ("2026-12-03T00:00+01:00", "on", None),
    ]


def test_state_at_with_offset_and_bad_input():
    state = schedule.state_at(W1, CAMPUSES["west"], [WEEKDAY], "off", "2026-12-01T07:00:00+00:00")
    assert (state["state"], state["rule"], state["at"]) == ("on", "weekday", "2026-12-01T08:00+01:00")
    with pytest.raises(KioskInputError, match="when: 'tomorrow' is not an ISO 8601"):
        schedule.state_at(W1, CAMPUSES["west"], [WEEKDAY], "off", "tomorrow")
    with pytest.raises(KioskInputError, match="until"):
        schedule.plan([W1], CAMPUSES, [WEEKDAY], "off", "2026-12-02", "2026-12-01")
    with pytest.raises(KioskInputError, match="timezone: 'Mars/Base' is not a known time zone"):
        schedule.plan([W1], {"west": {"timezone": "Mars/Base"}}, [WEEKDAY], "off")


def test_local_to_utc_gap_and_fold():
    import zoneinfo

    tz = zoneinfo.ZoneInfo("Europe/Berlin")
    assert schedule.local_to_utc(datetime.datetime(2026, 3, 29, 2, 30), tz) == datetime.datetime(
        2026, 3, 29, 1, 0, tzinfo=datetime.timezone.utc
    )
    assert schedule.local_to_utc(datetime.datetime(2026, 10, 25, 2, 30), tz) == datetime.datetime(
        2026, 10, 25, 0, 30, tzinfo=datetime.timezone.utc
    )
