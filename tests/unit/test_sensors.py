"""Sensor drivers, thresholds and alert transitions; the environment report."""

import pytest

from salt_kiosk.envreport import report, series
from salt_kiosk.errors import KioskInputError
from salt_kiosk.jobs import writer
from salt_kiosk.node import sensors


def cfg(**extra):
    base = [{"driver": "simulated"}, {"temperature": [5, 35]}, {"humidity": [20, 80]}, {"retry_delay": 0}]
    return sensors.parse_config(base + [{k: v} for k, v in extra.items()])


def test_alert_once_per_crossing_and_once_when_it_clears():
    script = [
        {"temperature": t, "humidity": 50, "smoke": s}
        for t, s in ((20, False), (40, False), (41, False), (20, False), (20, True), (20, True), (20, False))
    ]
    config, state, alarms = cfg(script=script), {}, {}
    seen = []
    for _ in script:
        reading = sensors.read(config, state)
        seen.append([(a["sensor"], a["state"]) for a in sensors.evaluate(config, reading, alarms)])
    assert seen == [
        [],
        [("temperature", "high")],
        [],
        [("temperature", "clear")],
        [("smoke", "smoke")],
        [],
        [("smoke", "clear")],
    ]


def test_failed_reads_are_retried_with_a_bound():
    config = cfg(script=[{"fail": True}, {"fail": True}, {"temperature": 21, "humidity": 40}], retries=3)
    reading = sensors.read(config, {}, sleep=lambda _s: None)
    assert reading["temperature"] == 21.0 and reading["attempts"] == 3 and len(reading["errors"]) == 2
    config = cfg(script=[{"fail": True}], retries=2)
    reading = sensors.read(config, {}, sleep=lambda _s: None)
    assert reading["temperature"] is None and reading["attempts"] == 2


def test_missing_hardware_library_makes_only_that_driver_unavailable():
    reading = sensors.read(sensors.parse_config({"driver": "adafruit_dht", "dht_pin": 4, "retry_delay": 0}), {})
    assert reading["temperature"] is None and "needs the Adafruit_DHT library" in reading["errors"][0]
    reading = sensors.read(sensors.parse_config({"driver": "circuitpython", "dht_pin": 4, "retry_delay": 0}), {})
    assert "needs adafruit-circuitpython-dht" in reading["errors"][0]


def test_salt_private_keys_are_ignored():
    assert sensors.parse_config([{"driver": "simulated"}, {"_beacon_name": "kiosk_env"}])["driver"] == "simulated"


@pytest.mark.parametrize(
    "config, message",
    [
        ({"driver": "bogus"}, "driver 'bogus' is unknown"),
        ({"temperature": "hot"}, "temperature threshold 'hot' is not a range"),
        ({"humidity": [80, 20]}, "humidity threshold [80, 20] is not a range"),
        ({"dht_pin": 40}, "dht_pin 40 is out of range: expected a BCM GPIO number 0-27"),
        ({"smoke_pin": -1}, "smoke_pin -1 is out of range"),
        ({"dht_type": 33}, "dht_type 33 is not supported"),
        ({"colour": "red"}, "unknown key(s) ['colour']"),
    ],
)
def test_bad_config_names_the_field(config, message):
    with pytest.raises(KioskInputError) as err:
        sensors.parse_config(config)
    assert message in str(err.value)


def test_report_per_relay_and_campus(opts):
    results = writer.JobResults.get(opts)
    events = [
        {"tag": "salt/beacon/relay-e1/kiosk_env/reading", "data": {"temperature": t, "humidity": 40, "smoke": False}}
        for t in (20, 22, 30)
    ]
    events += [
        {"tag": "salt/beacon/relay-e2/kiosk_env/reading", "data": {"temperature": 10, "humidity": 60, "smoke": True}},
        {
            "tag": "syndic/relay-e2/salt/beacon/relay-e2/kiosk_env/reading",  # the syndic's copy: not counted
            "data": {"temperature": 10, "humidity": 60, "smoke": True},
        },
        {
            "tag": "salt/beacon/relay-e1/kiosk_env/alert/temperature",
            "data": {"sensor": "temperature", "state": "high", "value": 40},
        },
        {"tag": "salt/beacon/relay-w1/kiosk_env/reading", "data": {"temperature": 25, "humidity": 50}},
    ]
    assert results.write("events", results.event_rows(events)) == "written"
    out = report(opts, campus="east")
    east = out["campuses"]["east"]
    assert east["relays"]["relay-e1"]["temperature"] == {"min": 20.0, "avg": 24.0, "max": 30.0, "count": 3}
    assert east["temperature"]["min"] == 10.0 and east["smoke_readings"] == 1
    assert "west" not in out["campuses"]
    assert [(a["relay"], a["state"]) for a in out["alerts"]] == [("relay-e1", "high")]
    assert report(opts)["campuses"]["west"]["humidity"]["avg"] == 50.0
    with pytest.raises(KioskInputError, match="campus 'north' is unknown"):
        report(opts, campus="north")
    with pytest.raises(KioskInputError, match="hours 'x' is not a number"):
        report(opts, hours="x")
    writer.JobResults.dispose_all()


def test_series_averages_each_interval_per_relay_and_campus(opts):
    import datetime

    import sqlalchemy as sa

    from salt_kiosk.db import schema

    results = writer.JobResults.get(opts)
    now = datetime.datetime(2026, 12, 7, 12, 0)
    readings = [  # (minutes before now, relay, data)
        (110, "relay-e1", {"temperature": 20, "humidity": 40}),
        (100, "relay-e1", {"temperature": 22, "humidity": 44, "smoke": True}),
        (95, "relay-e2", {"temperature": 30, "humidity": 50}),
        (50, "relay-e1", {"temperature": 30.5}),
        # What a relay sends is not trusted: no bool or text taken for a number.
        (10, "relay-e1", {"temperature": True, "humidity": "80"}),
        (130, "relay-e1", {"temperature": 99, "humidity": 99}),  # before the window
    ]
    events = [{"tag": f"salt/beacon/{relay}/kiosk_env/reading", "data": data} for _m, relay, data in readings]
    events.append({"tag": "salt/beacon/relay-e2/kiosk_env/alert/smoke", "data": {"sensor": "smoke", "state": "on"}})
    assert results.write("events", results.event_rows(events)) == "written"
    minutes = [m for m, _r, _d in readings] + [30]
    with results.engine.begin() as conn:
        ids = conn.execute(sa.select(schema.events.c.id).order_by(schema.events.c.id)).scalars().all()
        for event_id, before in zip(ids, minutes):
            conn.execute(
                schema.events.update()
                .where(schema.events.c.id == event_id)
                .values(alter_time=now - datetime.timedelta(minutes=before))
            )
    out = series(opts, campus="east", hours=2, buckets=4, now=now)
    assert (out["since"], out["until"], out["bucket_seconds"]) == ("2026-12-07T10:00:00Z", "2026-12-07T12:00:00Z", 1800)
    e1 = out["relays"]["relay-e1"]
    assert e1["campus"] == "east"
    assert e1["points"] == [
        {"at": "2026-12-07T10:00:00Z", "temperature": 21.0, "humidity": 42.0, "readings": 2, "smoke": 1},
        {"at": "2026-12-07T11:00:00Z", "temperature": 30.5, "humidity": None, "readings": 1, "smoke": 0},
        {"at": "2026-12-07T11:30:00Z", "temperature": None, "humidity": None, "readings": 1, "smoke": 0},
    ]
    first = out["campuses"]["east"]["points"][0]
    assert first == {"at": "2026-12-07T10:00:00Z", "temperature": 24.0, "humidity": 44.7, "readings": 3, "smoke": 1}
    assert [(a["relay"], a["sensor"], a["state"], a["at"]) for a in out["alerts"]] == [
        ("relay-e2", "smoke", "on", "2026-12-07T11:30:00Z")
    ]
    for bad in ("0", 1001, "x", True, "2.5"):
        with pytest.raises(KioskInputError, match=r"buckets .* is out of range \(accepted: an integer 1-1000\)"):
            series(opts, buckets=bad, now=now)
    writer.JobResults.dispose_all()
