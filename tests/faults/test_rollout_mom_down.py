"""
The master of masters driving a rollout in waves is killed in the middle of
it, with the ``salt-run`` that drives it (as when its host goes down), and
restarted. The rollout is in the database: ``kiosk_release.resume`` takes it
over at once (its driver is gone), asks the kiosks of the interrupted wave
what they run, sends nothing to the kiosk that finished installing during the
outage, and completes the rollout; ``latest.json`` moves only then.

The kiosks list both relays of the campus as masters: each is told which one
to fetch from (``kiosk_release.installed relay=``).
"""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest
import yaml

from tests.faults.conftest import KIOSKS, RELAYS, kiosks_answer, wait_for

pytestmark = pytest.mark.fleet

# Each kiosk's health gate takes a few seconds: time enough to kill the master mid-wave.
SLOW_CHECK = [sys.executable, "-c", "import time; time.sleep(6)"]


def make_release(folder, version):
    path = os.path.join(folder, f"kiosk-ui-{version}.tar.gz")
    manifest = yaml.safe_dump({"health": {"cmd": SLOW_CHECK, "timeout": 60}}).encode()
    with tarfile.open(path, "w:gz") as archive:
        for name, body in (("bin/app", f"ui {version}".encode()), ("kiosk-release.yaml", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return path


def attempt(campus, kiosk):
    try:
        with open(os.path.join(campus.release_dir(kiosk), ".kiosk-last-attempt.json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def test_rollout_continues_from_the_database_after_its_master_is_killed(campus):
    mom_id = "faults-mom-b"
    mom = campus.moms[mom_id]
    run = mom.salt_run_cli(timeout=300)
    if not mom.is_running():  # an earlier test that failed half-way may have left it stopped
        mom.start()
        campus.restart_syndics_for(mom_id)
    assert wait_for(lambda: kiosks_answer(mom.salt_cli(timeout=30)), 90), "kiosks do not answer faults-mom-b"
    path = make_release(campus.release_sources, "3.0.0")
    published = run.run("kiosk_release.publish", "3.0.0", path, "rollout=False")
    assert published.returncode == 0, published
    assert sorted(published.data["staging"]["staged"]) == sorted(RELAYS), published.data

    # The operator's salt-run, driving two waves of one kiosk each.
    salt_run = os.path.join(os.path.dirname(sys.executable), "salt-run")
    driver = subprocess.Popen(  # pylint: disable=consider-using-with
        [
            salt_run,
            "-c",
            mom.config_dir,
            "--out=json",
            "kiosk_release.rollout",
            "3.0.0",
            'waves=[1, "100%"]',
            "per_relay=1",
            "timeout=60",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sending = wait_for(
            lambda: campus.sql(
                "SELECT k.minion_id FROM {db}.kiosk_rollout_kiosks k JOIN {db}.kiosk_rollouts r ON r.id = k.rollout_id "
                "WHERE r.version = '3.0.0' AND k.status = 'sending'"
            ),
            60,
            step=0.2,
        )
        assert sending, "the rollout never sent its first wave"
        first = sending[0][0]
        time.sleep(1)
        # The host goes down: the master of masters and the salt-run driving the rollout.
        driver.send_signal(signal.SIGKILL)
        campus.kill_mom(mom_id)
        killed = time.time()
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.wait(timeout=30)

    # The kiosk finishes its install (and its health gate) on its own meanwhile.
    assert wait_for(lambda: attempt(campus, first).get("version") == "3.0.0", 60), attempt(campus, first)
    assert attempt(campus, first)["ok"] is True
    started_before = attempt(campus, first)["started"]
    others = sorted(set(KIOSKS) - {first})
    for kiosk in others:
        assert attempt(campus, kiosk).get("version") != "3.0.0", kiosk
    for relay, root in campus.release_root.items():
        latest = os.path.join(root, "kiosk_releases", "latest.json")
        assert not os.path.exists(latest) or json.load(open(latest, encoding="utf-8"))["version"] != "3.0.0", relay

    mom.start()
    campus.restart_syndics_for(mom_id)
    assert wait_for(lambda: kiosks_answer(mom.salt_cli(timeout=30)), 120), "the restarted master reaches no kiosk"
    state = campus.sql("SELECT status, wave FROM {db}.kiosk_rollouts WHERE version = '3.0.0'")
    assert [tuple(row) for row in state] == [("running", 0)], state
    print(f"master of masters back {time.time() - killed:.1f} s after the kill")

    resumed = run.run("kiosk_release.resume", "timeout=60")
    assert resumed.returncode == 0, resumed
    report = resumed.data
    assert report["status"] == "done", report
    # The kiosk that finished during the outage was asked, not sent the release again.
    assert report["kiosks"][first]["status"] == "unchanged", report["kiosks"]
    assert attempt(campus, first)["started"] == started_before
    for kiosk in others:
        assert report["kiosks"][kiosk]["status"] == "installed", report["kiosks"]
        assert attempt(campus, kiosk)["version"] == "3.0.0" and attempt(campus, kiosk)["ok"] is True
    # Each kiosk was told one of its two relays to fetch from.
    relays = set(RELAYS.values())
    assert all(info["relay"] in relays for info in report["kiosks"].values()), report["kiosks"]
    for relay, root in campus.release_root.items():
        with open(os.path.join(root, "kiosk_releases", "latest.json"), encoding="utf-8") as handle:
            assert json.load(handle)["version"] == "3.0.0", relay
