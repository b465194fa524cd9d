"""
A publish that fails is an error with its reason, not silence.

:func:`salt_kiosk.fanout.run_jobs` is driven with a real
``salt.client.LocalClient`` against master options (as the test fleet's master
of masters has them, :func:`salt_kiosk.topology.mom`) whose master is not
running, so the publish really fails in Salt; the callers are driven through
a real SQLite store.
"""

import os
import socket

import pytest
import salt.client
import salt.config
import sqlalchemy as sa
from pytestshellutils.utils import ports

from salt_kiosk import fanout, inventory, topology
from salt_kiosk.db import schema, store
from salt_kiosk.errors import KioskPublishError
from salt_kiosk.power import actions as power
from salt_kiosk.releases import stage

CAMPUSES = {
    "east": {"timezone": "Asia/Shanghai", "broadcast": "10.1.255.255", "relays": ["relay-e1", "relay-e2"]},
    "west": {"timezone": "Europe/Berlin", "broadcast": "10.2.255.255", "relays": ["relay-w1"]},
}

CSV = (
    "code,minion_id,campus,groups,ip,mac,vnc_port\n"
    "E01,kiosk-e1,east,opd,10.1.0.11,02:00:00:00:0e:01,5901\n"
    "W01,kiosk-w1,west,opd,10.2.0.11,02:00:00:00:0f:01,5911\n"
)

WAKE_JOBS = {
    "east": {"tgt": ["relay-e1", "relay-e2"], "fun": "kiosk.wake", "arg": [["02:00:00:00:0e:01"]]},
    "west": {"tgt": ["relay-w1"], "fun": "kiosk.wake", "arg": [["02:00:00:00:0f:01"]]},
}

NOT_CONTACTED = "The salt master could not be contacted. Is master running?"


@pytest.fixture
def master(tmp_path):
    """Master of masters options (tcp transport, order_masters) of a master that is not running."""
    opts = salt.config.master_config(None)
    root = tmp_path / "master"
    opts.update(
        topology.mom("127.0.0.1", ports.get_unused_localhost_port(), ports.get_unused_localhost_port()),
        root_dir=str(root),
        sock_dir=str(root / "sock"),
        pki_dir=str(root / "pki"),
        cachedir=str(root / "cache"),
        timeout=1,
        gather_job_timeout=1,
        kiosk={"campuses": CAMPUSES},
    )
    for key in ("sock_dir", "pki_dir", "cachedir"):
        os.makedirs(opts[key], exist_ok=True)
    yield opts
    store.dispose_all()


@pytest.fixture
def loaded(master, tmp_path):
    kstore = store.open_store(master)
    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    return kstore


def test_unreachable_master_is_an_error_naming_each_job_and_the_reason(master):
    with pytest.raises(KioskPublishError) as caught:
        fanout.run_jobs(master, WAKE_JOBS, 1)
    error = caught.value
    assert error.failures == {
        "east": f"publishing kiosk.wake to relay-e1, relay-e2 failed: {NOT_CONTACTED}",
        "west": f"publishing kiosk.wake to relay-w1 failed: {NOT_CONTACTED}",
    }
    assert error.results == {}
    assert str(error) == f"{error.failures['east']}; {error.failures['west']}"


def test_master_that_does_not_answer_is_an_error_with_salts_reason(master):
    # A wedged master: its sockets exist and its request port accepts
    # connections, but nothing ever answers.
    open(os.path.join(master["sock_dir"], "publish_pull.ipc"), "w", encoding="utf-8").close()
    with socket.socket() as wedged:
        wedged.bind(("127.0.0.1", 0))
        wedged.listen(8)
        master["ret_port"] = wedged.getsockname()[1]
        with pytest.raises(KioskPublishError) as caught:
            fanout.run_jobs(master, {"east": WAKE_JOBS["east"]}, 1)
    assert list(caught.value.failures) == ["east"]
    assert str(caught.value).startswith(
        "publishing kiosk.wake to relay-e1, relay-e2 failed: Salt request timed out. The master is not responding."
    )


def test_master_that_assigns_no_job_id_is_an_error(master, monkeypatch):
    monkeypatch.setattr(salt.client.LocalClient, "pub", lambda self, *args, **kwargs: {})
    with pytest.raises(
        KioskPublishError, match=r"publishing kiosk\.wake to relay-w1 failed: the master assigned no job id"
    ):
        fanout.run_jobs(master, {"west": WAKE_JOBS["west"]}, 1)


def test_published_job_without_answers_is_silence_not_an_error(master, monkeypatch):
    published = {"jid": "20260101000000000001", "minions": ["relay-w1"]}
    monkeypatch.setattr(salt.client.LocalClient, "pub", lambda self, *args, **kwargs: dict(published))
    assert fanout.run_jobs(master, {"west": WAKE_JOBS["west"]}, 1) == {"west": {}}


def test_a_job_is_published_under_the_job_id_it_carries(master, monkeypatch):
    seen = []

    def pub(self, *args, **kwargs):
        seen.append(kwargs.get("jid"))
        return {"jid": kwargs.get("jid") or "20260101000000000002", "minions": ["relay-w1"]}

    monkeypatch.setattr(salt.client.LocalClient, "pub", pub)
    job = dict(WAKE_JOBS["west"], jid="20261205063000123456")
    assert fanout.run_jobs(master, {"west": job}, 1) == {"west": {}}
    assert seen == ["20261205063000123456"]


def test_no_minion_matching_on_a_plain_master_is_absence_not_an_error(master, monkeypatch):
    # Without order_masters a master publishes nothing for a target it knows no
    # minion of, and says so with no jid and no minions.
    master["order_masters"] = False
    monkeypatch.setattr(salt.client.LocalClient, "pub", lambda self, *args, **kwargs: {"jid": None, "minions": []})
    assert fanout.run_jobs(master, {"west": WAKE_JOBS["west"]}, 1) == {"west": {}}


def test_wake_raises_instead_of_reporting_silent_relays(master, loaded):
    with pytest.raises(KioskPublishError) as caught:
        power.wake(opts=master, kstore=loaded, target="*", timeout=1, user="alice")
    assert caught.value.failures["east"] == f"publishing kiosk.wake to relay-e1, relay-e2 failed: {NOT_CONTACTED}"
    assert caught.value.failures["west"] == f"publishing kiosk.wake to relay-w1 failed: {NOT_CONTACTED}"
    assert power.list_events(loaded) == []


def test_shutdown_raises_instead_of_reporting_silent_kiosks(master, loaded):
    with pytest.raises(KioskPublishError, match=f"publishing kiosk.shutdown to kiosk-e1 failed: {NOT_CONTACTED}"):
        power.shutdown(opts=master, kstore=loaded, target="*", timeout=1)
    assert power.list_events(loaded) == []


def test_stage_records_the_publish_failure_per_relay(master, loaded, tmp_path):
    path = tmp_path / "app.tar"
    path.write_bytes(b"payload")
    release = {"version": "1.0.0", "md5": "321c3cf486ed509164edec1e1981fec8", "file": "app.tar"}
    result = stage.stage(opts=master, kstore=loaded, release=release, path=str(path), timeout=1)
    reasons = {
        relay: f"publishing kiosk.stage_release to {relay} failed: {NOT_CONTACTED}"
        for relay in ("relay-e1", "relay-e2", "relay-w1")
    }
    assert (result["staged"], result["silent"], result["failed"]) == ([], [], reasons)
    with loaded.connect() as conn:
        rows = conn.execute(sa.select(schema.release_stages)).all()
    assert {row.relay: (row.ok, row.error) for row in rows} == {relay: (False, why) for relay, why in reasons.items()}
