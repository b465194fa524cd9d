"""
The fleet console in a real browser (Debian's chromium, headless, driven by
Playwright) against salt-api on the real fleet: sign-in with the ``file``
eauth backend, every view showing the fleet's own data, a wake started from
the console producing magic packets, a watcher without the shutdown right
unable to shut a kiosk down, markup from the fleet shown as text, an ended
session sending the user back to the sign-in. Each view's screenshot is saved
under docs/ (README shows them). The releases view is tested in
test_release.py, once the fleet has releases and rollbacks to show, and the
environment view in test_assets_env.py, once a relay has sent readings.
"""

import datetime
import os
import time

import pytest
import requests
from playwright.sync_api import expect

from salt_kiosk.db import schema, store
from salt_kiosk.node import wol
from tests.conftest import KIOSK_NET
from tests.integration.conftest import OPS, WATCHER, Capture, shot, sign_in

pytestmark = pytest.mark.fleet


def test_sign_in_and_the_fleet_view(page, fleet, fleet_inventory):
    page.goto("/console")
    page.wait_for_selector("#login")
    shot(page, "login")
    page.fill("#username", OPS[0])
    page.fill("#password", "wrong")
    page.select_option("#eauth", "file")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("refused the user name or password")
    sign_in(page, *OPS)
    # The token is sent in a header and kept for this tab only: no cookie holds it.
    token = page.evaluate("JSON.parse(sessionStorage.getItem('kiosk-console-session')).token")
    assert token and not [c for c in page.context.cookies() if token in c["value"]]

    page.wait_for_selector(".tile")
    codes = page.eval_on_selector_all(".tile .code", "tiles => tiles.map(t => t.textContent)")
    assert sorted(codes) == sorted(code for code, *_ in KIOSK_NET.values())
    fleet_data = fleet.salt_run_cli().run("kiosk_inventory.fleet").data
    counts = fleet_data["counts"]
    assert page.inner_text("#fleet-counts").startswith(f"{counts['kiosks']} kiosks: {counts['on']} on")
    assert page.eval_on_selector_all(".campus", "s => s.map(x => x.dataset.campus)") == ["east", "west"]
    assert "relay-e1, relay-e2" in page.inner_text("[data-campus=east] .relays")

    page.select_option("#f-campus", "west")
    assert page.eval_on_selector_all(".tile .code", "t => t.map(x => x.textContent)") == ["W01", "W02"]
    page.select_option("#f-campus", "")
    page.select_option("#f-group", "pay")
    assert page.eval_on_selector_all(".tile .code", "t => t.map(x => x.textContent)") == ["E01", "W01"]
    page.select_option("#f-group", "")
    page.fill("#f-search", "e0")
    assert page.eval_on_selector_all(".tile .code", "t => t.map(x => x.textContent)") == ["E01", "E02"]

    page.fill("#f-search", "")

    # Keyboard: the views are links reachable with Tab, and Enter opens one.
    page.focus("nav a[data-view=plan]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#plan-timeline .tl-row[data-kiosk]")


def test_plan_view_with_a_rule_previewed_before_it_is_saved(page, fleet, fleet_inventory):
    run = fleet.salt_run_cli()
    tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    for name in ("console-holiday", "console-weekday"):
        run.run("kiosk_power.rule_remove", name)
    weekday = run.run(
        "kiosk_power.rule_add", "console-weekday", "state=on", "days=mon-sat", "start=07:30", "end=18:00", "target=*"
    )
    assert weekday.returncode == 0, weekday
    try:
        sign_in(page, *OPS)
        page.goto("/console#/plan")
        page.wait_for_selector("#plan-timeline .tl-row[data-kiosk]")
        rows = page.eval_on_selector_all("#plan-timeline .tl-row[data-kiosk]", "r => r.map(x => x.dataset.kiosk)")
        assert rows == sorted(KIOSK_NET)

        page.fill("#r-name", "console-holiday")
        page.select_option("#r-state", "off")
        page.fill("#r-dates", tomorrow)
        page.fill("#r-start", "00:00")
        page.fill("#r-end", "24:00")
        page.fill("#r-target", "group:pay")
        page.fill("#r-priority", "100")
        # The preview is drawn from kiosk_power.preview before anything is saved.
        page.wait_for_selector("#preview-timeline .seg.holiday[data-rule=console-holiday]")
        previewed = page.eval_on_selector_all(
            "#preview-timeline .tl-row[data-kiosk]", "r => r.map(x => x.dataset.kiosk)"
        )
        assert previewed == ["kiosk-e1", "kiosk-w1"]
        title = page.get_attribute("#preview-timeline .seg.holiday", "title")
        assert "console-holiday" in title and "priority 100" in title
        assert "console-holiday" not in [r["name"] for r in run.run("kiosk_power.rule_list").data]
        shot(page, "plan", full_page=True)

        # A value the store refuses: its own message, next to the field.
        page.fill("#r-start", "25:00")
        expect(page.locator("#err-start")).to_contain_text("start:")
        message = page.inner_text("#err-start")
        assert message.startswith("start:") and "25:00" in message
        page.click("#r-save")
        assert "console-holiday" not in [r["name"] for r in run.run("kiosk_power.rule_list").data]

        page.fill("#r-start", "00:00")
        page.click("#r-save")
        expect(page.locator("#status")).to_have_text("Rule console-holiday saved.")
        page.wait_for_selector("#rules tr[data-rule=console-holiday]")
        stored = {r["name"]: r for r in run.run("kiosk_power.rule_list").data}["console-holiday"]
        assert (stored["state"], stored["target"], stored["priority"], stored["dates"]) == (
            "off",
            "group:pay",
            100,
            [tomorrow],
        )
        # The saved holiday rule sits on top of the timeline of the pay kiosks.
        page.wait_for_selector("#plan-timeline .tl-row[data-kiosk=kiosk-w1] .seg.holiday")
        assert not page.query_selector("#plan-timeline .tl-row[data-kiosk=kiosk-w2] .seg.holiday")

        # Edit it (the name stays), then remove it after the confirmation.
        page.click("#rules tr[data-rule=console-holiday] button:text-is('Edit')")
        assert page.input_value("#r-name") == "console-holiday" and page.input_value("#r-priority") == "100"
        page.fill("#r-priority", "90")
        page.click("#r-save")
        expect(page.locator("#rules tr[data-rule=console-holiday] td:nth-child(6)")).to_have_text("90")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#rules tr[data-rule=console-holiday] button:text-is('Remove')")
        page.wait_for_selector("#rules tr[data-rule=console-holiday]", state="detached")
        assert "console-holiday" not in [r["name"] for r in run.run("kiosk_power.rule_list").data]
    finally:
        for name in ("console-holiday", "console-weekday"):
            run.run("kiosk_power.rule_remove", name)


def test_wake_from_the_console_sends_magic_packets_after_a_test(page, fleet, fleet_inventory):
    capture = Capture(fleet.wol_port)
    try:
        sign_in(page, *OPS)
        page.click("#actions summary")
        page.select_option("#a-action", "wake")
        page.fill("#a-target", "id:kiosk-w1")
        page.click("#a-check")
        page.wait_for_selector("#a-confirm")
        assert "kiosk-w1" in page.inner_text("#action-result") and "relay-w2" in page.inner_text("#action-result")
        assert capture.collect(quiet=1.0) == []  # the test sends nothing
        page.click("#a-confirm")
        page.wait_for_selector("#a-done")
        packets = capture.collect()
    finally:
        capture.close()
    mac = KIOSK_NET["kiosk-w1"][1]
    sources = {addr for data, addr in packets if wol.is_magic_packet(data, mac)}
    assert sources == {fleet.relay_address["relay-w1"], fleet.relay_address["relay-w2"]}, packets
    events = fleet.salt_run_cli().run("kiosk_power.events", "limit=1").data
    assert events[0]["action"] == "wake" and events[0]["user"] == "console-ops"
    # The engine verifies the console's wake as any power event (sweeps at +2/+4/+6 s here).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sweeps = fleet.salt_run_cli().run("kiosk_sweep.results", str(events[0]["id"])).data
        if "3" in sweeps or 3 in sweeps:
            break
        time.sleep(2)
    assert "3" in sweeps or 3 in sweeps, sweeps

    # A unit-split job from the same panel (test.ping is what console-ops may publish to kiosks).
    page.select_option("#a-action", "job")
    page.fill("#a-target", "campus:east")
    page.fill("#a-fun", "test.ping")
    page.fill("#a-unit", "1")
    page.click("#a-check")
    page.click("#a-confirm")
    page.wait_for_selector("#a-done")
    result = page.inner_text("#action-result")
    assert "kiosk-e1" in result and "kiosk-e2" in result, result


def test_events_and_kiosk_views(page, fleet, fleet_inventory):
    run = fleet.salt_run_cli()
    fleet.salt_cli().run("test.ping", minion_tgt="kiosk-e1")
    sign_in(page, *OPS)

    # The fleet now has sweeps (the console's wake above): tiles take the observed state's colour.
    fleet_data = run.run("kiosk_inventory.fleet").data
    page.wait_for_selector(".tile")
    for campus in fleet_data["campuses"]:
        for kiosk in campus["kiosks"]:
            classes = page.get_attribute(f".tile[data-kiosk={kiosk['minion_id']}]", "class").split()
            assert f"power-{kiosk['power'] or 'unswept'}" in classes, (kiosk, classes)
    assert "power-on" in page.get_attribute(".tile[data-kiosk=kiosk-w1]", "class")
    shot(page, "fleet")
    page.set_viewport_size({"width": 1920, "height": 1080})  # a wall display
    shot(page, "fleet-wall")
    page.set_viewport_size({"width": 1366, "height": 768})

    page.goto("/console#/events")
    page.wait_for_selector("#event-table tbody tr")
    newest = run.run("kiosk_power.events", "limit=1").data[0]
    first = page.query_selector("#event-table tbody tr")
    assert first.get_attribute("data-event") == str(newest["id"])
    first.query_selector("button").click()
    page.wait_for_selector("#event-detail table")
    for minion in newest["kiosks"]:
        assert minion in page.inner_text("#event-detail")
    page.wait_for_selector("#sweep-table tr[data-sweep='3'][data-kiosk=kiosk-w1]")
    shot(page, "events", full_page=True)

    page.goto("/console#/fleet")
    page.click(".tile[data-kiosk=kiosk-e1]")
    page.wait_for_selector("#kiosk-inventory")
    assert page.inner_text("#kiosk-inventory [data-field=code]") == "E01"
    assert page.inner_text("#kiosk-inventory [data-field=ip]") == KIOSK_NET["kiosk-e1"][2]
    asset = run.run("kiosk_inventory.asset", "kiosk-e1").data  # made by an inventory refresh, if one ran
    if asset:
        assert page.inner_text("#kiosk-inventory [data-field=hostname]") == asset["hostname"]
    else:
        assert "No inventory refresh has reported this kiosk yet" in page.inner_text("#kiosk")
    page.wait_for_selector("#kiosk-jobs tbody tr")
    recent = run.run("kiosk_jobs.recent", "kiosk-e1").data
    assert page.inner_text("#kiosk-jobs tbody tr td.mono") == recent[0]["jid"]
    # Nothing listens on the configured noVNC address here: the browser gets a stand-in page.
    page.context.route("http://127.0.0.1:6080/**", lambda route: route.fulfill(body="noVNC stand-in"))
    with page.context.expect_page() as popup:
        page.click("#novnc")
    popup.value.wait_for_load_state()
    url = popup.value.url
    assert url.startswith("http://127.0.0.1:6080/vnc.html?") and "token%3DE01" in url
    popup.value.close()
    assert page.get_attribute("#novnc-link", "href") == url
    assert page.get_attribute("#novnc-link", "rel") == "noopener noreferrer"
    shot(page, "kiosk")


def test_a_watcher_without_the_shutdown_right_cannot_shut_a_kiosk_down(page, fleet, fleet_inventory):
    power_log = fleet.power_log["kiosk-w2"]
    before = open(power_log, encoding="utf-8").read() if os.path.exists(power_log) else ""
    sign_in(page, *WATCHER)
    page.click("#actions summary")
    options = page.eval_on_selector_all("#a-action option", "o => o.map(x => x.value)")
    assert options == ["wake"]  # shutdown is hidden: /login's perms do not grant it
    # Rights read at sign-in can be out of date: salt-api still refuses, and the console shows its answer.
    page.evaluate(
        "() => { const s = JSON.parse(sessionStorage.getItem('kiosk-console-session'));"
        " s.perms = ['@runner']; sessionStorage.setItem('kiosk-console-session', JSON.stringify(s)); }"
    )
    page.reload()
    page.wait_for_selector("#actions")
    page.click("#actions summary")
    page.select_option("#a-action", "shutdown")
    page.fill("#a-target", "id:kiosk-w2")
    page.click("#a-check")
    page.wait_for_selector("#action-result .error")
    refusal = page.inner_text("#action-result .error")
    assert 'Authentication failure of type "token" occurred for user watcher' in refusal, refusal
    assert page.query_selector("#a-confirm") is None
    after = open(power_log, encoding="utf-8").read() if os.path.exists(power_log) else ""
    assert after == before


def test_markup_from_the_fleet_is_shown_as_text(page, fleet, fleet_inventory):
    code = '<img src=x onerror="window.__pwned=1">'
    reason = "<script>window.__pwned=2</script><b>smoke</b>"
    engine = store.make_engine(fleet.mom.config["kiosk"]["db"])
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    # A row an older release (or someone with database access) wrote: nothing checked it.
    with engine.begin() as conn:
        conn.execute(
            schema.kiosks.insert().values(
                code=code, minion_id="kiosk-hostile", campus="east", groups=["<i>g</i>"], created_at=now, updated_at=now
            )
        )
        conn.execute(
            schema.sweep_results.insert().values(
                event_id=None,
                sweep=3,
                minion_id="kiosk-hostile",
                expected="on",
                observed="off",
                network="down",
                salt="down",
                ok=False,
                reason=reason,
                final=True,
                checked_at=now,
            )
        )
    try:
        sign_in(page, *OPS)
        tile = page.wait_for_selector(".tile[data-kiosk=kiosk-hostile]")
        assert tile.query_selector(".code").text_content() == code
        assert reason in tile.query_selector(".alert-text").text_content()
        assert page.query_selector("#fleet img, #fleet script, #fleet b, #fleet i") is None
        page.goto("/console#/events")
        page.wait_for_selector("#alert-table")
        assert reason in page.inner_text("#alert-table")
        assert page.query_selector("#alert-table b, #alert-table script") is None
        assert page.evaluate("window.__pwned") is None
    finally:
        with engine.begin() as conn:
            conn.execute(schema.sweep_results.delete().where(schema.sweep_results.c.minion_id == "kiosk-hostile"))
            conn.execute(schema.kiosks.delete().where(schema.kiosks.c.minion_id == "kiosk-hostile"))
        engine.dispose()


def test_an_ended_session_returns_to_the_sign_in(page, fleet, fleet_inventory, salt_api):
    sign_in(page, *OPS)
    page.wait_for_selector(".tile")
    token = page.evaluate("JSON.parse(sessionStorage.getItem('kiosk-console-session')).token")
    # Revoked elsewhere (or salt-api restarted): the next call comes back to the sign-in.
    assert requests.post(f"{salt_api}/logout", headers={"X-Auth-Token": token}, timeout=30).status_code == 200
    page.click("text=Refresh")
    expect(page.locator("#login-error")).to_contain_text("session has ended")
    assert page.evaluate("sessionStorage.getItem('kiosk-console-session')") is None
    # A token past its expiry is not even sent.
    sign_in(page, *OPS)
    page.evaluate(
        "() => { const s = JSON.parse(sessionStorage.getItem('kiosk-console-session'));"
        " s.expire = 1; sessionStorage.setItem('kiosk-console-session', JSON.stringify(s)); }"
    )
    page.click("nav a[data-view=events]")
    expect(page.locator("#login-error")).to_contain_text("session has ended")
    # Signing out revokes the token at salt-api.
    sign_in(page, *OPS)
    token = page.evaluate("JSON.parse(sessionStorage.getItem('kiosk-console-session')).token")
    page.click("#logout")
    page.wait_for_selector("#login")
    resp = requests.post(
        salt_api,
        headers={"X-Auth-Token": token, "Accept": "application/json"},
        json=[{"client": "runner", "fun": "kiosk_inventory.fleet"}],
        timeout=30,
    )
    assert resp.status_code == 401
