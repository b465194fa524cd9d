"""
Power orchestration over the real store; the publisher (the daemon layer) is
replaced by a recorder that answers like relays and kiosks do. The real
publishing path is covered in tests/integration/test_power.py.
"""

import pytest

from salt_kiosk import inventory
from salt_kiosk.errors import KioskInputError
from salt_kiosk.power import actions as power

CSV = (
    "code,minion_id,campus,groups,ip,mac,vnc_port\n"
    "E01,kiosk-e1,east,opd,10.1.0.11,02:00:00:00:0e:01,5901\n"
    "E02,kiosk-e2,east,,10.1.0.12,,5902\n"
    "W01,kiosk-w1,west,opd,10.2.0.11,02:00:00:00:0f:01,5911\n"
)


@pytest.fixture
def loaded(kstore, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    return kstore


class Publisher:
    def __init__(self, answering):
        self.answering = answering
        self.jobs = None

    def __call__(self, opts, jobs, timeout):
        self.jobs = jobs
        out = {}
        for key, job in jobs.items():
            out[key] = {}
            for minion in job["tgt"]:
                if minion not in self.answering:
                    continue
                if job["fun"] == "kiosk.wake":
                    ret = {
                        mac: {
                            "address": job["kwarg"]["broadcast"],
                            "port": job["kwarg"]["port"],
                            "packets": job["kwarg"]["repeat"],
                        }
                        for mac in job["arg"][0]
                    }
                else:
                    ret = {"command": ["shutdown", "-h", "+1"], "result": True}
                out[key][minion] = {
                    "ret": self.answering[minion] if self.answering[minion] is not None else ret,
                    "retcode": 0,
                }
        return out


def test_wake_fans_out_to_all_campus_relays_and_names_silent_ones(loaded):
    pub = Publisher({"relay-e1": None, "relay-w1": None})
    result = power.wake({}, loaded, "*", port=4009, repeat=2, user="alice", publish=pub)
    assert pub.jobs["east"] == {
        "tgt": ["relay-e1", "relay-e2"],
        "fun": "kiosk.wake",
        "arg": [["02:00:00:00:0e:01"]],
        "kwarg": {"broadcast": "10.1.255.255", "port": 4009, "repeat": 2},
    }
    assert pub.jobs["west"]["tgt"] == ["relay-w1"]
    e1 = result["kiosks"]["kiosk-e1"]
    assert e1["ok"] and e1["acked"] == ["relay-e1"] and e1["silent"] == ["relay-e2"]
    assert result["kiosks"]["kiosk-e2"] == {
        "code": "E02",
        "campus": "east",
        "ok": False,
        "acked": [],
        "silent": [],
        "failed": {},
        "detail": "no MAC address in the inventory",
        "mac": None,
    }
    assert result["kiosks"]["kiosk-w1"]["ok"]
    assert (result["ok"], result["failed"]) == (2, 1)
    assert result["campuses"]["east"]["relays_silent"] == ["relay-e2"]

    events = power.list_events(loaded)
    assert events[0]["id"] == result["event"]
    assert events[0]["user"] == "alice" and events[0]["action"] == "wake" and events[0]["target"] == "*"
    assert events[0]["kiosks"]["kiosk-e1"]["silent"] == ["relay-e2"]
    assert events[0]["ok_count"] == 2


def test_campus_without_answering_relay_is_a_failure(loaded):
    pub = Publisher({"relay-w1": "ERROR: something broke"})
    result = power.wake({}, loaded, "group:opd", publish=pub)
    e1 = result["kiosks"]["kiosk-e1"]
    assert not e1["ok"]
    assert e1["silent"] == ["relay-e1", "relay-e2"]
    assert "no relay of campus east sent the wake-up" in e1["detail"]
    w1 = result["kiosks"]["kiosk-w1"]
    assert not w1["ok"] and w1["failed"] == {"relay-w1": "ERROR: something broke"}
    assert result["failed"] == 2


def test_bad_input_sends_nothing_and_records_nothing(loaded):
    pub = Publisher({})
    for kwargs, message in (
        ({"target": "site:east"}, "not a kiosk target"),
        ({"target": "campus:north"}, "matches no kiosk"),
        ({"target": "*", "port": 0}, "not a TCP port"),
        ({"target": "*", "repeat": 21}, "repeat 21"),
        ({"target": "*", "timeout": 0}, "timeout 0"),
    ):
        with pytest.raises(KioskInputError, match=message):
            power.wake({}, loaded, publish=pub, **kwargs)
    assert pub.jobs is None
    assert power.list_events(loaded) == []


def test_shutdown_per_kiosk_and_test_mode(loaded):
    pub = Publisher({"kiosk-e1": None, "kiosk-w1": "ERROR: shutdown: not permitted"})
    result = power.shutdown({}, loaded, "*", delay=120, message="Closing", publish=pub)
    assert pub.jobs["east"] == {
        "tgt": ["kiosk-e1", "kiosk-e2"],
        "fun": "kiosk.shutdown",
        "kwarg": {"delay": 120, "reboot": False, "message": "Closing"},
    }
    assert result["kiosks"]["kiosk-e1"]["ok"] and result["kiosks"]["kiosk-e1"]["command"] == ["shutdown", "-h", "+1"]
    assert result["kiosks"]["kiosk-e2"]["detail"] == "the kiosk's minion did not answer"
    assert result["kiosks"]["kiosk-w1"]["detail"] == "ERROR: shutdown: not permitted"
    assert power.list_events(loaded, kiosk="kiosk-w1")[0]["action"] == "shutdown"

    dry = power.shutdown({}, loaded, "id:kiosk-e1", test=True, publish=pub)
    assert dry["test"] is True and dry["event"] is None
    assert pub.jobs["east"]["kwarg"]["test"] is True
    assert len(power.list_events(loaded)) == 1
    with pytest.raises(KioskInputError, match="limit"):
        power.list_events(loaded, limit=0)


def test_bad_event_ids_and_sweep_timeouts_are_clear_errors(loaded):
    from salt_kiosk.power import verify

    for bad in ("abc", 0, -3, None):
        with pytest.raises(KioskInputError, match="is not a power event id"):
            power.list_events(loaded, event=bad) if bad is not None else verify.results_for(loaded, bad)
    pub = Publisher({})
    for bad in ("abc", 0.5, 1e9):
        with pytest.raises(KioskInputError, match="timeout"):
            verify.check({}, loaded, "*", expect="on", timeout=bad, publish=pub)
    assert pub.jobs is None


def test_preview_shows_the_plan_with_the_rule_and_writes_nothing(loaded, opts):
    from salt_kiosk.power import rules

    rules.add(loaded, "weekday", state="on", days="mon-fri", start="08:00", end="18:00", target="*")
    before = rules.list_rules(loaded)
    holiday = {"name": "holiday", "state": "off", "dates": "2027-01-04", "start": "00:00", "end": "24:00"}
    holiday.update(target="group:opd", priority=100)
    plan = power.preview(opts, loaded, holiday, since="2027-01-04", until="2027-01-06")
    assert set(plan) == {"kiosk-e1", "kiosk-w1"}  # the rule's own target
    day_one = [seg for seg in plan["kiosk-e1"]["timeline"] if seg["from"].startswith("2027-01-04")]
    assert {(seg["state"], seg["rule"]) for seg in day_one} == {("off", "holiday")}
    assert any(seg["rule"] == "weekday" for seg in plan["kiosk-e1"]["timeline"])
    assert rules.list_rules(loaded) == before  # nothing stored

    # An edit of a stored rule replaces it for the preview only.
    shorter = {"name": "weekday", "state": "on", "days": "mon-fri", "start": "08:00", "end": "09:00"}
    plan = power.preview(opts, loaded, shorter, target="id:kiosk-e2", since="2027-01-05", until="2027-01-06")
    on = [seg for seg in plan["kiosk-e2"]["timeline"] if seg["state"] == "on"]
    assert [(seg["from"][11:16], seg["until"][11:16]) for seg in on] == [("08:00", "09:00")]
    assert rules.list_rules(loaded) == before


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "x", "state": "dim", "days": "mon", "start": "08:00", "end": "09:00"}, "state"),
        ({"name": "x", "state": "on", "days": "mon", "start": "25:00", "end": "09:00"}, "start"),
        ({"state": "on", "days": "mon", "start": "08:00", "end": "09:00"}, "name: is required"),
        ("weekday", "is not accepted: a mapping"),
    ],
)
def test_preview_refuses_a_bad_rule_with_the_store_message(loaded, opts, rule, message):
    with pytest.raises(KioskInputError, match=message):
        power.preview(opts, loaded, rule)
