"""
Inventory refresh through both syndics, and the kiosk_env beacon with the
simulated driver on a relay minion of the real fleet.
"""

import json
import time

import pytest

from salt_kiosk.jobs import writer
from tests.conftest import fleet_inventory_csv
from tests.integration.conftest import OPS, shot, sign_in

pytestmark = pytest.mark.fleet


def import_csv(fleet, tmp_path, text):
    path = tmp_path / "inventory.csv"
    path.write_text(text)
    ret = fleet.salt_run_cli().run("kiosk_inventory.import_csv", str(path), "replace=True")
    assert ret.returncode == 0, ret


def test_refresh_through_both_syndics_and_history(fleet, fleet_inventory, tmp_path):
    try:
        first = fleet.salt_run_cli().run("kiosk_inventory.refresh")
        assert first.returncode == 0, first
        report = first.data
        assert set(fleet.kiosks) | set(fleet.relay_minions) <= set(report["answered"]), report
        grain = fleet.salt_cli().run("grains.item", "kiosk", minion_tgt="kiosk-w1").data["kiosk"]
        assert grain["role"] == "kiosk" and grain["cpu_count"] >= 1 and "ip" in grain
        relay = fleet.salt_cli().run("grains.item", "kiosk", minion_tgt="relay-e1").data["kiosk"]
        assert relay["role"] == "relay"
        # The inventory's address of kiosk-e1 goes stale; the next refresh
        # corrects it and writes exactly one history row for it.
        stale = fleet_inventory_csv().replace(
            [line for line in fleet_inventory_csv().splitlines() if ",kiosk-e1," in line][0],
            "E01,kiosk-e1,east,pilot,10.77.0.1,%s,5900" % grain["mac"],
        )
        import_csv(fleet, tmp_path, stale)
        before = fleet.salt_run_cli().run("kiosk_inventory.history", "kiosk-e1").data
        second = fleet.salt_run_cli().run("kiosk_inventory.refresh").data
        assert second["changed"]["kiosk-e1"]["ip"] == {"old": "10.77.0.1", "new": grain["ip"]}, second
        history = fleet.salt_run_cli().run("kiosk_inventory.history", "E01").data
        added = history[: len(history) - len(before)]
        assert [(h["field"], h["old"], h["new"]) for h in added] == [("ip", "10.77.0.1", grain["ip"])]
        third = fleet.salt_run_cli().run("kiosk_inventory.refresh").data
        assert "kiosk-e1" not in third["changed"]
    finally:
        import_csv(fleet, tmp_path, fleet_inventory_csv())


def env_events(fleet, relay):
    opts = {"cachedir": "/nonexistent", "kiosk_mysql": {"db": fleet.mom.config["kiosk"]["db"], "master_id": "t"}}
    results = writer.JobResults.get(opts)
    with results.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT tag, data FROM kiosk_events WHERE tag LIKE %s ORDER BY id", (f"salt/beacon/{relay}/kiosk_env/%",)
        ).all()
    return [(tag.rsplit("kiosk_env/", 1)[1], json.loads(data)) for tag, data in rows]


def test_beacon_readings_and_one_alert_per_crossing(fleet):
    relay = "relay-e2"
    script = [{"temperature": t, "humidity": 50, "smoke": False} for t in (20, 40, 41, 42, 21, 22)]
    config = json.dumps(
        [{"driver": "simulated"}, {"interval": 1}, {"temperature": [5, 35]}, {"humidity": [20, 80]}, {"script": script}]
    )
    cli = fleet.salt_cli()
    bad = cli.run("beacons.add", "kiosk_env", json.dumps([{"driver": "bogus"}]), minion_tgt=relay)
    assert "driver 'bogus' is unknown" in json.dumps(bad.data), bad
    added = cli.run("beacons.add", "kiosk_env", config, minion_tgt=relay)
    assert added.returncode == 0 and added.data["result"] is True, added
    try:
        deadline = time.monotonic() + 60
        events = []
        while time.monotonic() < deadline:
            events = env_events(fleet, relay)
            if sum(1 for kind, _ in events if kind == "reading") >= 12:
                break
            time.sleep(2)
    finally:
        cli.run("beacons.delete", "kiosk_env", minion_tgt=relay)
    readings = [data for kind, data in events if kind == "reading"]
    alerts = [data for kind, data in events if kind.startswith("alert/")]
    assert len(readings) >= 12, events
    # Exactly one alert per crossing (20 -> 40 high, 42 -> 21 clear), none per interval.
    temps = [r["temperature"] for r in readings]
    crossings = sum(1 for a, b in zip([20.0] + temps, temps) if (a > 35) != (b > 35))
    assert len(alerts) in (crossings, crossings + 1), (temps, alerts)  # the last reading's alert may trail
    assert {a["state"] for a in alerts} == {"high", "clear"}
    report = fleet.salt_run_cli().run("kiosk_env.report", "campus=east", "hours=1").data
    stats = report["campuses"]["east"]["relays"][relay]["temperature"]
    assert stats["min"] == 20.0 and stats["max"] == 42.0
    assert any(a["relay"] == relay and a["state"] == "high" for a in report["alerts"])
    charted = fleet.salt_run_cli().run("kiosk_env.series", "campus=east", "hours=1", "buckets=12").data
    points = charted["relays"][relay]["points"]
    assert charted["bucket_seconds"] == 300 and 1 <= len(points) <= 12
    assert sum(p["readings"] for p in points) == stats["count"]
    assert min(p["temperature"] for p in points) >= 20.0 and max(p["temperature"] for p in points) <= 42.0
    env = cli.run("kiosk.env", json.dumps([{"driver": "simulated"}, {"script": script}]), minion_tgt=relay).data
    assert env["temperature"] == 20.0 and env["driver"] == "simulated"


def test_the_console_charts_the_readings_and_lists_the_alerts(page, fleet):
    # After the beacon test above: relay-e2's readings and alerts are in the central database.
    series = fleet.salt_run_cli().run("kiosk_env.series", "hours=1", "buckets=60").data
    assert "relay-e2" in series["relays"], series
    sign_in(page, *OPS)
    page.goto("/console#/env?hours=1")
    page.wait_for_selector("[data-relay=relay-e2] svg circle.point")
    assert sorted(page.eval_on_selector_all("#env [data-campus]", "b => b.map(x => x.dataset.campus)")) == sorted(
        series["campuses"]
    )
    label = page.get_attribute("[data-relay=relay-e2] svg.chart", "aria-label")
    assert label == "Temperature at relay-e2"
    ticks = page.eval_on_selector_all("[data-relay=relay-e2] svg:first-of-type .tick", "t => t.map(x => x.textContent)")
    temps = [p["temperature"] for p in series["relays"]["relay-e2"]["points"] if p["temperature"] is not None]
    low, high = (min(temps), max(temps)) if min(temps) != max(temps) else (temps[0] - 1, temps[0] + 1)
    assert ticks == [f"{low:.1f}°C", f"{high:.1f}°C"]  # one interval's average gets a 2-degree scale
    alerts = page.inner_text("#env-alerts")
    assert "relay-e2" in alerts and "high" in alerts
    shot(page, "env")
    page.click("text=24 hours")
    page.wait_for_selector("#env [data-relay=relay-e2] svg path.line.temperature", state="attached")
