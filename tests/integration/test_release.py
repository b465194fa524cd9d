"""
Verified delivery and releases through the real tree: master of masters ->
syndic node (hop 1, over HTTP from the master of masters, md5 checked by the
relay's minion) -> kiosk (hop 2, salt:// from its own syndic master, md5
checked again).

The tests in this module run in order and share the fleet's release history:
1.0.0 everywhere, then 1.1.0 with a file altered on relay-e1 (east kiosks
refuse it), then a rollback, then a release published while kiosk-w2 is down,
then 1.3.0, whose health check fails on two kiosks.
"""

import hashlib
import io
import json
import os
import socket
import sys
import tarfile
import time
import urllib.parse

import pytest
import yaml

from tests.integration.conftest import OPS, shot, sign_in

pytestmark = pytest.mark.fleet


def md5_of(data):
    return hashlib.md5(data).hexdigest()


def make_release(folder, name, body):
    path = os.path.join(folder, name)
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("bin/app")
        info.size = len(body)
        archive.addfile(info, io.BytesIO(body))
    with open(path, "rb") as handle:
        return path, md5_of(handle.read())


def installed_app(fleet, kiosk):
    """(current version, content of bin/app) read from the kiosk's disk."""
    current = os.path.join(fleet.release_dir[kiosk], "current")
    if not os.path.islink(current):
        return None, None
    with open(os.path.join(current, "bin", "app"), "rb") as handle:
        return os.readlink(current), handle.read()


@pytest.fixture(scope="module")
def release_files(fleet):
    # The master of masters publishes only from kiosk:release_sources.
    folder = fleet.release_sources
    return {
        "1.0.0": make_release(folder, "kiosk-ui.tar.gz", b"ui version one"),
        "1.1.0": make_release(folder, "kiosk-ui-1.1.tar.gz", b"ui version two"),
        "1.2.0": make_release(folder, "kiosk-ui-1.2.tar.gz", b"ui version three"),
    }


def test_kiosk_deliver_and_file_state_from_salt(fleet, tmp_path):
    """kiosk.deliver / kiosk_file.delivered fetch salt:// from the kiosk's own syndic master."""
    src = os.path.join(os.path.dirname(__file__), "..", "..", "demo", "inventory.csv")
    with open(src, "rb") as handle:
        md5 = md5_of(handle.read())
    dest = str(tmp_path / "inventory.csv")
    cli = fleet.salt_cli()
    ret = cli.run("kiosk.deliver", "salt://demo/inventory.csv", dest, md5, minion_tgt="kiosk-e1")
    assert ret.returncode == 0, ret
    assert ret.data["changed"] is True and ret.data["md5"] == md5
    assert md5_of(open(dest, "rb").read()) == md5
    again = cli.run("kiosk.deliver", "salt://demo/inventory.csv", dest, md5, minion_tgt="kiosk-e1")
    assert again.data["changed"] is False and again.data["bytes"] == 0

    state_dest = str(tmp_path / "state.csv")
    dry = cli.run(
        "state.single",
        "kiosk_file.delivered",
        state_dest,
        "source=salt://demo/inventory.csv",
        f"md5={md5}",
        "test=True",
        minion_tgt="kiosk-e1",
    )
    assert isinstance(dry.data, dict), dry
    chunk = next(iter(dry.data.values()))
    assert chunk["result"] is None and not os.path.exists(state_dest)
    done = cli.run(
        "state.single",
        "kiosk_file.delivered",
        state_dest,
        "source=salt://demo/inventory.csv",
        f"md5={md5}",
        minion_tgt="kiosk-e1",
    )
    chunk = next(iter(done.data.values()))
    assert chunk["result"] is True and chunk["changes"]["md5"] == md5
    second = cli.run(
        "state.single",
        "kiosk_file.delivered",
        state_dest,
        "source=salt://demo/inventory.csv",
        f"md5={md5}",
        minion_tgt="kiosk-e1",
    )
    assert next(iter(second.data.values()))["changes"] == {}

    wrong = "deadbeef" * 4
    bad = cli.run(
        "state.single",
        "kiosk_file.delivered",
        state_dest,
        "source=salt://demo/fleet.py",
        f"md5={wrong}",
        minion_tgt="kiosk-e1",
    )
    chunk = next(iter(bad.data.values()))
    assert chunk["result"] is False and f"expected {wrong}" in chunk["comment"]
    assert md5_of(open(state_dest, "rb").read()) == md5  # untouched

    missing = cli.run("kiosk.deliver", "salt://no/such/file", str(tmp_path / "x"), md5, minion_tgt="kiosk-e1")
    assert "not found on the master" in str(missing.data) and not (tmp_path / "x").exists()


def test_release_reaches_every_kiosk_with_both_checks(fleet, fleet_inventory, release_files):
    path, md5 = release_files["1.0.0"]
    ret = fleet.salt_run_cli(timeout=300).run("kiosk_release.publish", "1.0.0", path)
    assert ret.returncode == 0, ret
    rel = ret.data
    assert rel["md5"] == md5 and rel["version"] == "1.0.0"
    assert sorted(rel["staging"]["staged"]) == sorted(fleet.relay_minions), rel["staging"]
    assert sorted(rel["rollout"]["installed"]) == sorted(fleet.kiosks), rel["rollout"]
    # The relays fetched from the configured address (kiosk:release_serve_address);
    # the server is gone once staging is over.
    served = urllib.parse.urlsplit(rel["staging"]["served_from"])
    assert served.hostname == "127.0.0.1"
    with pytest.raises(OSError):
        socket.create_connection((served.hostname, served.port), timeout=2).close()
    for relay, root in fleet.release_root.items():
        with open(os.path.join(root, "kiosk_releases", "1.0.0", "kiosk-ui.tar.gz"), "rb") as handle:
            assert md5_of(handle.read()) == md5, relay
    for kiosk in fleet.kiosks:
        assert installed_app(fleet, kiosk) == ("1.0.0", b"ui version one")
    listed = fleet.salt_cli().run("kiosk.release", minion_tgt="kiosk-w1")
    assert listed.data["version"] == "1.0.0" and listed.data["md5"] == md5

    other, _ = release_files["1.1.0"]
    refused = fleet.salt_run_cli().run("kiosk_release.publish", "1.0.0", other)
    assert "already published with md5" in refused.stdout
    bad = fleet.salt_run_cli().run("kiosk_release.publish", "not a version", path)
    assert "is not a valid version string" in bad.stdout


def test_file_altered_on_a_syndic_is_refused_by_its_kiosks(fleet, release_files):
    path, md5 = release_files["1.1.0"]
    ret = fleet.salt_run_cli(timeout=300).run("kiosk_release.publish", "1.1.0", path, "rollout=False")
    assert ret.returncode == 0, ret
    assert "rollout" not in ret.data
    # Someone alters the staged file on relay-e1, the master of the east kiosks.
    staged = os.path.join(fleet.release_root["relay-e1"], "kiosk_releases", "1.1.0", "kiosk-ui-1.1.tar.gz")
    with open(staged, "ab") as handle:
        handle.write(b"tampered")
    out = fleet.salt_run_cli(timeout=300).run("kiosk_release.rollout")
    assert ret.returncode == 0, out
    assert sorted(out.data["installed"]) == ["kiosk-w1", "kiosk-w2"], out.data
    assert sorted(out.data["failed"]) == ["kiosk-e1", "kiosk-e2"]
    assert f"expected {md5}" in out.data["failed"]["kiosk-e1"]
    for kiosk in ("kiosk-e1", "kiosk-e2"):
        assert installed_app(fleet, kiosk) == ("1.0.0", b"ui version one")  # still the old release
    status = fleet.salt_run_cli().run("kiosk_release.status").data
    assert status["latest"] == "1.1.0"
    assert sorted(status["versions"]["1.1.0"]) == ["kiosk-w1", "kiosk-w2"]
    assert sorted(status["behind"]) == ["kiosk-e1", "kiosk-e2"]
    assert status["failures"]["kiosk-e1"]["version"] == "1.1.0"
    assert "md5 mismatch" in status["failures"]["kiosk-e1"]["reason"]


def test_rollback_publishes_old_content_as_new_version(fleet):
    ret = fleet.salt_run_cli(timeout=300).run("kiosk_release.rollback")
    assert ret.returncode == 0, ret
    assert ret.data["version"] == "1.1.1" and ret.data["rollback_of"] == "1.0.0"
    assert sorted(ret.data["rollout"]["installed"]) == sorted(fleet.kiosks), ret.data["rollout"]
    for kiosk in fleet.kiosks:
        assert installed_app(fleet, kiosk) == ("1.1.1", b"ui version one")
    status = fleet.salt_run_cli().run("kiosk_release.status").data
    assert status["versions"] == {"1.1.1": sorted(fleet.kiosks)} or sorted(status["versions"]["1.1.1"]) == sorted(
        fleet.kiosks
    )
    assert status["behind"] == [] and status["failures"] == {}


def test_restarted_minion_picks_up_release_published_while_down(fleet, release_files):
    kiosk = fleet.kiosks["kiosk-w2"]
    kiosk.terminate()
    try:
        path, md5 = release_files["1.2.0"]
        ret = fleet.salt_run_cli(timeout=300).run("kiosk_release.publish", "1.2.0", path, "timeout=20")
        assert ret.returncode == 0, ret
        assert ret.data["rollout"]["absent"] == ["kiosk-w2"], ret.data["rollout"]
        assert installed_app(fleet, "kiosk-w2") == ("1.1.1", b"ui version one")
        status = fleet.salt_run_cli().run("kiosk_release.status", "timeout=10").data
        assert status["unreachable"]["kiosk-w2"] == {"last_known_version": "1.1.1"}
        assert "kiosk-w2" in status["behind"]
    finally:
        kiosk.start()
    # The startup state (kiosk.release) installs the latest release on start.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and installed_app(fleet, "kiosk-w2")[0] != "1.2.0":
        time.sleep(1)
    assert installed_app(fleet, "kiosk-w2") == ("1.2.0", b"ui version three")
    status = fleet.salt_run_cli().run("kiosk_release.status").data
    assert "kiosk-w2" in status["versions"]["1.2.0"] and "kiosk-w2" not in status["behind"]


def test_release_failing_its_health_check_rolls_back_only_where_it_fails(fleet, event_listener):
    """
    1.3.0's check fails where a marker file lies (kiosk-e2, and kiosk-w2 which
    is off during the publish): those two go back to 1.2.0 by themselves,
    kiosk-w2 through its startup state at power-on, and the central status
    says so; the other kiosks keep 1.3.0.
    """
    check = [sys.executable, "-c", "import os, sys; sys.exit('marker found' if os.path.exists('../unhealthy') else 0)"]
    manifest = {"health": {"cmd": check, "timeout": 3}}
    folder = fleet.release_sources
    path = os.path.join(folder, "kiosk-ui-1.3.tar.gz")
    with tarfile.open(path, "w:gz") as archive:
        for name, body in (("bin/app", b"ui version four"), ("kiosk-release.yaml", yaml.safe_dump(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    markers = [os.path.join(fleet.release_dir[k], "unhealthy") for k in ("kiosk-e2", "kiosk-w2")]
    for marker in markers:
        open(marker, "w").close()
    started = time.time()
    kiosk = fleet.kiosks["kiosk-w2"]
    kiosk.terminate()
    try:
        try:
            ret = fleet.salt_run_cli(timeout=300).run("kiosk_release.publish", "1.3.0", path, "timeout=30")
        finally:
            kiosk.start()
        assert ret.returncode == 0, ret
        out = ret.data["rollout"]
        assert sorted(out["installed"]) == ["kiosk-e1", "kiosk-w1"], out
        assert list(out["rolled_back"]) == ["kiosk-e2"] and out["absent"] == ["kiosk-w2"], out
        assert "marker found" in out["rolled_back"]["kiosk-e2"]
        assert installed_app(fleet, "kiosk-e1") == ("1.3.0", b"ui version four")
        assert installed_app(fleet, "kiosk-e2") == ("1.2.0", b"ui version three")
        # The kiosk told the master of masters itself, through its syndic.
        told = event_listener.wait_for_events(
            [(fleet.mom.id, "kiosk/release/rolled_back")], after_time=started, timeout=60
        )
        assert told.found_all_events, told
        # A minion's event on the master bus: Salt puts the sender in "id" and what it sent in "data".
        event = next(iter(told.matches)).data
        assert event["id"] == "kiosk-e2", event
        assert event["data"]["version"] == "1.3.0" and event["data"]["previous"] == "1.2.0", event

        # kiosk-w2 starts, installs 1.3.0 (latest) through its startup state, fails the check, goes back.
        attempt_file = os.path.join(fleet.release_dir["kiosk-w2"], ".kiosk-last-attempt.json")
        deadline = time.monotonic() + 120
        attempt = {}
        while time.monotonic() < deadline and attempt.get("version") != "1.3.0":
            time.sleep(1)
            try:
                with open(attempt_file) as handle:
                    attempt = json.load(handle)
            except (OSError, ValueError):
                attempt = {}
        assert attempt.get("rolled_back") is True and attempt["previous"] == "1.2.0", attempt
        assert installed_app(fleet, "kiosk-w2") == ("1.2.0", b"ui version three")

        status = fleet.salt_run_cli().run("kiosk_release.status").data
        assert status["latest"] == "1.3.0"
        assert sorted(status["versions"]["1.3.0"]) == ["kiosk-e1", "kiosk-w1"], status
        assert sorted(status["rolled_back"]) == ["kiosk-e2", "kiosk-w2"], status
        assert status["rolled_back"]["kiosk-e2"]["version"] == "1.3.0"
        assert "marker found" in status["rolled_back"]["kiosk-e2"]["reason"]
        assert status["failures"] == {}
        # At its next start kiosk-w2 does not try the release it rolled back again.
        again = fleet.salt_cli(timeout=120).run("state.sls", "kiosk.release", minion_tgt="kiosk-w2")
        comment = next(iter(again.data.values()))["comment"]
        assert "not installed again" in comment, again
        assert installed_app(fleet, "kiosk-w2") == ("1.2.0", b"ui version three")
    finally:
        for marker in markers:
            os.unlink(marker)


def test_rollout_in_waves_halts_on_its_first_wave_and_resumes(fleet, event_listener):
    """
    1.4.0 goes out in waves [1, "100%"] with max_failed 0%: the first wave is
    kiosk-e1, whose check fails there; the rollout halts, nobody else is
    touched and latest.json stays. With the cause fixed, resume finishes it.
    """
    check = [sys.executable, "-c", "import os, sys; sys.exit('marker found' if os.path.exists('../unhealthy') else 0)"]
    path = os.path.join(fleet.release_sources, "kiosk-ui-1.4.tar.gz")
    manifest = yaml.safe_dump({"health": {"cmd": check, "timeout": 2}}).encode()
    with tarfile.open(path, "w:gz") as archive:
        for name, body in (("bin/app", b"ui version five"), ("kiosk-release.yaml", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    before = {kiosk: installed_app(fleet, kiosk) for kiosk in fleet.kiosks}
    latest = os.path.join(fleet.release_root["relay-w1"], "kiosk_releases", "latest.json")
    marker = os.path.join(fleet.release_dir["kiosk-e1"], "unhealthy")
    open(marker, "w").close()
    started = time.time()
    run = fleet.salt_run_cli(timeout=300)
    try:
        ret = run.run(
            "kiosk_release.publish", "1.4.0", path, 'waves=[1, "100%"]', "max_failed=0%", "per_relay=1", "timeout=60"
        )
        # A halted rollout makes salt-run exit non-zero.
        assert ret.returncode != 0, ret
        out = ret.data["rollout"]
        assert out["status"] == "halted" and out["wave"] == 1, out
        assert list(out["rolled_back"]) == ["kiosk-e1"] and out["installed"] == [], out
        assert [w["state"] for w in out["waves"]] == ["halted", "pending"]
        for kiosk in fleet.kiosks:
            assert installed_app(fleet, kiosk) == before[kiosk], kiosk
        with open(latest) as handle:
            assert json.load(handle)["version"] == "1.3.0"
        halted = event_listener.wait_for_events(
            [(fleet.mom.id, "kiosk/release/halted")], after_time=started, timeout=30
        )
        assert halted.found_all_events
        status = run.run("kiosk_release.status").data
        assert status["rollouts"][0]["id"] == out["id"] and status["rollouts"][0]["status"] == "halted"
        assert status["rollouts"][0]["kiosks"]["kiosk-e1"]["status"] == "rolled_back"
        assert status["rollouts"][0]["kiosks"]["kiosk-w2"]["status"] == "pending"
        refused = run.run("kiosk_release.rollout", "1.3.0")
        assert refused.returncode != 0 and "is halted: resume it" in refused.stdout
    finally:
        os.unlink(marker)
    resumed = run.run("kiosk_release.resume")
    assert resumed.returncode == 0, resumed
    assert resumed.data["status"] == "done", resumed.data
    assert sorted(resumed.data["installed"]) == sorted(fleet.kiosks), resumed.data
    for kiosk in fleet.kiosks:
        assert installed_app(fleet, kiosk) == ("1.4.0", b"ui version five"), kiosk
    with open(latest) as handle:
        assert json.load(handle)["version"] == "1.4.0"
    again = run.run("kiosk_release.resume")
    assert again.returncode != 0 and "no rollout is halted" in again.stdout


def test_the_console_shows_releases_rollouts_and_each_kiosk(page, fleet, fleet_inventory):
    # Last in this module: the fleet now has releases, a rollback, and a halted then resumed rollout.
    status = fleet.salt_run_cli().run("kiosk_release.status").data
    releases = fleet.salt_run_cli().run("kiosk_release.list").data
    sign_in(page, *OPS)
    page.goto("/console#/releases")
    page.wait_for_selector("#release-kiosks tbody tr")
    assert page.inner_text("#release-latest") == f"Latest release: {status['latest']}"
    shown = page.eval_on_selector_all("#release-list tbody tr", "r => r.map(x => x.dataset.version)")
    assert shown == [r["version"] for r in reversed(releases)]
    rollouts = page.eval_on_selector_all("#rollouts [data-rollout]", "r => r.map(x => Number(x.dataset.rollout))")
    assert rollouts == [r["id"] for r in status["rollouts"]]
    newest = status["rollouts"][0]
    assert f"Rollout {newest['id']} of {newest['version']}: {newest['status']}" in page.inner_text("#rollouts")
    for version, kiosks in status["versions"].items():
        for kiosk in kiosks:
            row = page.query_selector(f"#release-kiosks tr[data-kiosk={kiosk}]")
            assert row.query_selector("td:nth-child(2)").text_content() == version
    shot(page, "releases")
