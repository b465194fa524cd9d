"""salt_kiosk.overview: the fleet at a glance (kiosk_inventory.fleet)."""

import datetime

import pytest

from salt_kiosk import inventory, overview
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError
from salt_kiosk.releases import rollout

CSV = (
    "code,minion_id,campus,groups,ip,mac,vnc_port\n"
    "E01,kiosk-e1,east,opd;pay,10.1.0.11,00:11:22:33:44:01,5900\n"
    "E02,kiosk-e2,east,opd,10.1.0.12,00:11:22:33:44:02,\n"
    "W01,kiosk-w1,west,pay,10.2.0.11,00:11:22:33:44:03,5901\n"
)


def sweep(kstore, minion, sweep_no, observed, ok, final, minutes, event=7, reason=None):
    with kstore.begin() as conn:
        conn.execute(
            schema.sweep_results.insert().values(
                event_id=event,
                sweep=sweep_no,
                minion_id=minion,
                expected="on",
                observed=observed,
                network="up" if observed == "on" else "down",
                salt="up" if observed == "on" else "down",
                ok=ok,
                reason=reason,
                final=final,
                checked_at=datetime.datetime(2026, 12, 7, 7, 0) + datetime.timedelta(minutes=minutes),
            )
        )


@pytest.fixture
def fleet_store(kstore):
    inventory.import_text(kstore, CSV, "fleet.csv")
    # kiosk-e1: woken, seen on at +5. kiosk-e2: still off at the final sweep (+15): an open alert.
    sweep(kstore, "kiosk-e1", 1, "on", True, False, 5)
    sweep(kstore, "kiosk-e2", 1, "off", False, False, 5)
    sweep(kstore, "kiosk-e2", 3, "off", False, True, 15, reason="relays see it down, its minion is silent")
    rollout.record_kiosk(kstore, "kiosk-e1", version="1.2.0", md5="0" * 32, ok=True)
    rollout.record_kiosk(kstore, "kiosk-w1", version="1.1.0", attempted="1.2.0", ok=False, rolled_back=True)
    return kstore


def test_campuses_relays_and_each_kiosks_state_release_and_alert(fleet_store):
    view = overview.fleet(fleet_store)
    assert [c["name"] for c in view["campuses"]] == ["east", "west"]
    east = view["campuses"][0]
    assert east["timezone"] == "Asia/Shanghai" and "relay-e1" in east["relays"]
    e1, e2 = east["kiosks"]
    assert (e1["code"], e1["power"], e1["release"], e1["release_ok"], e1["alert"]) == ("E01", "on", "1.2.0", True, None)
    assert e1["checked_at"] == "2026-12-07T07:05:00Z" and e1["groups"] == ["opd", "pay"]
    assert e2["power"] == "off" and e2["release"] is None
    assert e2["alert"] == {
        "since": "2026-12-07T07:15:00Z",
        "event": 7,
        "expected": "on",
        "observed": "off",
        "reason": "relays see it down, its minion is silent",
    }
    (w1,) = view["campuses"][1]["kiosks"]
    assert w1["power"] is None and w1["release"] == "1.1.0" and w1["release_ok"] is False
    assert view["counts"] == {"kiosks": 3, "on": 1, "off": 1, "unknown": 0, "unswept": 1, "alerts": 1}


def test_a_later_right_sweep_closes_the_alert(fleet_store):
    sweep(fleet_store, "kiosk-e2", 1, "on", True, False, 60, event=8)
    view = overview.fleet(fleet_store)
    e2 = view["campuses"][0]["kiosks"][1]
    assert e2["power"] == "on" and e2["alert"] is None
    assert view["counts"]["alerts"] == 0


def test_target_and_search_filter_the_kiosks(fleet_store):
    view = overview.fleet(fleet_store, "campus:west")
    assert [c["name"] for c in view["campuses"]] == ["west"]
    assert [k["code"] for k in view["campuses"][0]["kiosks"]] == ["W01"]
    view = overview.fleet(fleet_store, "group:pay", search="e0")
    assert [[k["code"] for k in c["kiosks"]] for c in view["campuses"]] == [["E01"], []]
    assert view["counts"]["kiosks"] == 1


@pytest.mark.parametrize(
    "target,search,message",
    [
        ("campus:north", None, "campus 'north' is unknown (known: east, west)"),
        ("north", None, "is not a kiosk target"),
        ("*", "x" * 65, "at most 64 printable characters"),
        ("*", "E0\u202e", "is not accepted: a part of a kiosk code"),
        ("*", 12, "is not accepted: a part of a kiosk code"),
    ],
)
def test_bad_target_or_search_is_refused_by_name(fleet_store, target, search, message):
    with pytest.raises(KioskInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        overview.fleet(fleet_store, target, search=search)
