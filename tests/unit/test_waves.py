"""
Rollouts in waves: the arguments, the plan (members spread over campuses and
relays, at most per_relay fetches per relay), halting past max_failed, resume,
abort with rollback, and latest.json moving only when the rollout is done.
The kiosks are simulated at the publisher (salt_kiosk.fanout.run_jobs).
"""

import socket
import subprocess

import pytest
import sqlalchemy as sa

from salt_kiosk import inventory
from salt_kiosk.db import schema
from salt_kiosk.errors import KioskInputError
from salt_kiosk.node.release_install import ROLLED_BACK_MARK
from salt_kiosk.releases import waves

CSV = "code,minion_id,campus,groups,ip,mac,vnc_port\n" + "".join(
    f"{campus[0].upper()}{n:02d},kiosk-{campus[0]}{n},{campus},,,,\n"
    for campus in ("east", "west")
    for n in range(1, 6)
)

RELAYS = {"east": ["10.0.1.1", "10.0.1.2"], "west": ["10.0.2.1", "10.0.2.2"]}

V1 = {"version": "1.0.0", "md5": "1" * 32, "file": "ui.tar.gz", "health": None}
V2 = {"version": "2.0.0", "md5": "2" * 32, "file": "ui.tar.gz", "health": {"cmd": ["true"]}}


class Fleet:
    """Ten kiosks behind two relays per campus, answering kiosk.release and kiosk_release.installed."""

    def __init__(self, kstore):
        self.kstore = kstore
        self.kiosks = {}
        for row in inventory.list_kiosks(kstore, "*"):
            self.kiosks[row["minion_id"]] = {
                "version": "1.0.0",
                "md5": V1["md5"],
                "masters": RELAYS[row["campus"]],
                "via": RELAYS[row["campus"]][0],
            }
        self.off = set()
        self.unhealthy = set()
        self.rounds = []  # per install round: {relay: number of kiosks}
        self.installs = []  # (minion, version, relay)

    def __call__(self, opts, jobs, timeout):
        out = {}
        installs = {}
        for key, job in jobs.items():
            out[key] = {}
            for minion in job["tgt"]:
                if minion in self.off:
                    continue
                if job["fun"] == "kiosk.release":
                    out[key][minion] = {"ret": dict(self.kiosks[minion]), "retcode": 0}
                    continue
                version = job["arg"][1]
                relay = job["kwarg"].get("relay")
                installs[relay] = installs.get(relay, 0) + 1
                self.installs.append((minion, version, relay))
                if minion in self.unhealthy:
                    chunk = {"result": False, "comment": f"release {version} {ROLLED_BACK_MARK} to 1.0.0: selftest"}
                else:
                    changed = self.kiosks[minion]["version"] != version
                    self.kiosks[minion].update(version=version, md5=job["kwarg"]["md5"])
                    chunk = {
                        "result": True,
                        "comment": "ok",
                        "changes": {"version": {"new": version}} if changed else {},
                    }
                out[key][minion] = {"ret": {"kiosk_release_|-x_|-x_|-installed": chunk}, "retcode": 0}
        if installs:
            self.rounds.append(installs)
        return out


@pytest.fixture
def sim(kstore, tmp_path, monkeypatch):
    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    with kstore.begin() as conn:
        for seq, release in enumerate((V1, V2), start=1):
            conn.execute(
                schema.releases.insert().values(
                    version=release["version"],
                    seq=seq,
                    filename=release["file"],
                    md5=release["md5"],
                    size=1,
                    health=release["health"],
                    created_at=waves._now(),
                )
            )
    simulated = Fleet(kstore)
    monkeypatch.setattr(waves.fanout, "run_jobs", simulated)
    simulated.promoted = []
    monkeypatch.setattr(
        waves.stage, "promote", lambda opts, version, timeout=60: simulated.promoted.append(version) or ["r"]
    )
    return simulated


def start(opts, kstore, **kwargs):
    fired, progress = [], []
    kwargs.setdefault("fire", lambda data, tag: fired.append((tag, data)))
    kwargs.setdefault("progress", progress.append)
    report = waves.start(opts, kstore, V2, **kwargs)
    return report, fired, progress


# -- arguments ------------------------------------------------------------------------


def test_waves_are_read_as_operators_write_them():
    assert waves.parse_waves(None) == ["100%"]
    assert waves.parse_waves([1, "10%", "50%", "100%"]) == [1, "10%", "50%", "100%"]
    assert waves.parse_waves("1, 10%, 100%") == [1, "10%", "100%"]
    assert waves.parse_waves(["2", "12.5%"]) == [2, "12.5%"]
    assert waves.parse_max_failed("5%") == 5 and waves.parse_max_failed(0) == 0 and waves.parse_max_failed(None) == 100
    assert waves.parse_per_relay("10") == 10 and waves.parse_per_relay(None) is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"waves": ["10%", "5%"]}, r"waves\[1\] '5%' does not grow"),
        ({"waves": [5, 5]}, r"waves\[1\] 5 does not grow"),
        ({"waves": ["50%", "150%"]}, r"waves\[1\] '150%' is not a share from above 0% to 100%"),
        ({"waves": ["0%"]}, "is not a share"),
        ({"waves": [0]}, r"waves\[0\] 0 is not a kiosk count"),
        ({"waves": [True]}, "is not a kiosk count"),
        ({"waves": ["ten"]}, r"waves\[0\] 'ten' is not a kiosk count"),
        ({"waves": []}, "is not a list of waves"),
        ({"waves": list(range(1, 30))}, "at most 20"),
        ({"max_failed": "120%"}, "max_failed '120%' is not a share from 0% to 100%"),
        ({"max_failed": -1}, "max_failed -1 is not a share"),
        ({"max_failed": "a few"}, "max_failed 'a few'"),
        ({"per_relay": 0}, "per_relay 0 is out of range"),
        ({"per_relay": "lots"}, "per_relay 'lots' is out of range"),
        ({"timeout": 0}, "timeout 0 is out of range"),
    ],
)
def test_bad_rollout_arguments_start_nothing(opts, kstore, sim, kwargs, message):
    with pytest.raises(KioskInputError, match=message):
        waves.start(opts, kstore, V2, **kwargs)
    with kstore.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.rollouts)).scalar() == 0
    assert sim.installs == [] and sim.rounds == []


def test_wave_sizes_grow_to_the_whole_target():
    assert waves.wave_sizes([1, "10%", "50%", "100%"], 100) == [1, 9, 40, 50]
    # A small target: the 10% wave would be empty and is skipped.
    assert waves.wave_sizes([1, "10%", "50%", "100%"], 4) == [1, 1, 2]
    # Short of 100%: a last wave completes the target.
    assert waves.wave_sizes([2], 10) == [2, 8]
    assert waves.wave_sizes(["100%"], 0) == []


def test_members_are_spread_over_campuses_and_relays(kstore, sim):
    kiosks = inventory.list_kiosks(kstore, "*")
    first, *rest = waves.plan(kiosks, [2, "100%"])
    assert sorted(k["campus"] for k in first) == ["east", "west"]
    answers = {m: sim.kiosks[m] for m in sim.kiosks}
    assigned = waves.assign_relays(answers, {m: k["campus"] for m, k in ((k["minion_id"], k) for k in kiosks)})
    # Only the relays that answered for a campus are used: here the first of each.
    assert set(assigned.values()) == {"10.0.1.1", "10.0.2.1"}
    for minion in sim.kiosks:
        sim.kiosks[minion]["via"] = sim.kiosks[minion]["masters"][hash(minion) % 2]
    sim.kiosks["kiosk-e1"]["via"], sim.kiosks["kiosk-e2"]["via"] = "10.0.1.1", "10.0.1.2"
    sim.kiosks["kiosk-w1"]["via"], sim.kiosks["kiosk-w2"]["via"] = "10.0.2.1", "10.0.2.2"
    assigned = waves.assign_relays(answers, {k["minion_id"]: k["campus"] for k in kiosks})
    per_relay = {}
    for relay in assigned.values():
        per_relay[relay] = per_relay.get(relay, 0) + 1
    assert sorted(per_relay.values()) == [2, 2, 3, 3]
    assert waves.rounds({"a": "r1", "b": "r1", "c": "r1", "d": "r2"}, 2) == [
        {"r1": ["a", "b"], "r2": ["d"]},
        {"r1": ["c"]},
    ]


# -- driving -----------------------------------------------------------------------------


def test_a_healthy_rollout_goes_wave_by_wave_and_moves_latest_at_the_end(opts, kstore, sim):
    report, fired, progress = start(opts, kstore, waves=[1, "50%", "100%"], max_failed="10%", per_relay=2)
    assert report["status"] == "done" and sorted(report["installed"]) == sorted(sim.kiosks)
    assert [w["size"] for w in report["waves"]] == [1, 4, 5] and {w["state"] for w in report["waves"]} == {"done"}
    assert report["promoted_on"] == ["r"] and sim.promoted == ["2.0.0"]
    assert [tag for tag, _ in fired] == ["kiosk/release/rollout_done"]
    # Never more than per_relay kiosks fetching from one relay at a time.
    assert max(n for round_ in sim.rounds for n in round_.values()) == 2
    assert all(relay in sum(RELAYS.values(), []) for _m, _v, relay in sim.installs)
    assert any("wave 3/3" in p["message"] for p in progress)
    # The health settings travel with the install.
    assert report["kiosks"]["kiosk-e1"]["status"] == "installed"
    with kstore.connect() as conn:
        recorded = conn.execute(sa.select(schema.release_kiosks).where(schema.release_kiosks.c.minion_id == "kiosk-e1"))
        assert recorded.one().version == "2.0.0"


def test_a_wave_over_the_threshold_halts_and_touches_no_further_kiosk(opts, kstore, sim):
    sim.unhealthy = {"kiosk-e1"}
    report, fired, _progress = start(opts, kstore, waves=[2, "100%"], max_failed="10%")
    assert report["status"] == "halted" and report["wave"] == 1
    assert list(report["rolled_back"]) == ["kiosk-e1"] and report["installed"] == ["kiosk-w1"]
    assert [w["state"] for w in report["waves"]] == ["halted", "pending"]
    assert sorted(m for m, _v, _r in sim.installs) == ["kiosk-e1", "kiosk-w1"]
    assert sim.promoted == []
    tag, data = fired[0]
    assert (
        tag == "kiosk/release/halted"
        and data["wave"] == 1
        and data["failed"] == 1
        and "over max_failed 10%" in data["reason"]
    )
    # Another rollout cannot start while this one is halted.
    with pytest.raises(KioskInputError, match=r"rollout \d+ of 2.0.0 is halted: resume it"):
        waves.start(opts, kstore, V2)
    # The cause is fixed: resume retries the wave (asking first) and goes on.
    sim.unhealthy = set()
    installs_before = len(sim.installs)
    resumed = waves.resume(opts, kstore)
    assert resumed["status"] == "done" and sorted(resumed["installed"]) == sorted(sim.kiosks)
    again = [m for m, _v, _r in sim.installs[installs_before:]]
    assert "kiosk-w1" not in again and again.count("kiosk-e1") == 1
    assert sim.promoted == ["2.0.0"]
    with pytest.raises(KioskInputError, match="is done, not halted"):
        waves.resume(opts, kstore, report["id"])


def test_kiosks_that_do_not_answer_are_not_failures(opts, kstore, sim):
    sim.off = {"kiosk-e1", "kiosk-w1", "kiosk-e2"}
    report, _fired, _progress = start(opts, kstore, waves=[2, "100%"], max_failed="0%")
    assert report["status"] == "done" and sorted(report["absent"]) == ["kiosk-e1", "kiosk-e2", "kiosk-w1"]
    # They install at their next start: latest.json moved.
    assert sim.promoted == ["2.0.0"]


def test_a_rollout_silent_for_long_is_taken_over(opts, kstore, sim):
    report, _fired, _progress = start(opts, kstore, waves=[1, "100%"])
    with kstore.begin() as conn:
        conn.execute(
            schema.rollouts.update().values(status="running", wave=1, updated_at=waves._now().replace(year=2000))
        )
    assert waves.resume(opts, kstore, report["id"])["status"] == "done"


def test_resume_refuses_what_is_not_halted(opts, kstore, sim):
    with pytest.raises(KioskInputError, match="no rollout is halted"):
        waves.resume(opts, kstore)
    with pytest.raises(KioskInputError, match="rollout 99 does not exist"):
        waves.resume(opts, kstore, 99)


def test_an_interrupted_rollout_is_resumed_without_re_running_its_wave_blindly(opts, kstore, sim, monkeypatch):
    calls = {"n": 0}
    real = waves.fanout.run_jobs

    def dies_mid_wave(opts_, jobs, timeout):
        out = real(opts_, jobs, timeout)
        if any(job["fun"] == "state.single" for job in jobs.values()):
            calls["n"] += 1
            if calls["n"] == 2:
                raise SystemExit("the master of masters dies")
        return out

    monkeypatch.setattr(waves.fanout, "run_jobs", dies_mid_wave)
    with pytest.raises(SystemExit):
        start(opts, kstore, waves=[2, "100%"], per_relay=1)
    row = waves.active_rollout(kstore)
    assert row.status == "running" and row.wave == 1
    with pytest.raises(KioskInputError, match="is running"):
        waves.resume(opts, kstore)
    # The salt-run that drove it is gone (here: a process that has exited).
    dead = subprocess.Popen(["true"])
    dead.wait()
    with kstore.begin() as conn:
        conn.execute(schema.rollouts.update().values(holder=f"{socket.gethostname()}:{dead.pid}"))
    sent_before = len(sim.installs)
    done_before = {m for m, _v, _r in sim.installs}
    monkeypatch.setattr(waves.fanout, "run_jobs", real)
    resumed = waves.resume(opts, kstore)
    assert resumed["status"] == "done"
    # The kiosks that installed before the crash answered that they have it: not sent again.
    assert not done_before & {m for m, _v, _r in sim.installs[sent_before:]}
    assert sorted(resumed["installed"] + resumed["unchanged"]) == sorted(sim.kiosks)


def test_abort_with_rollback_puts_the_previous_release_back(opts, kstore, sim):
    sim.unhealthy = {"kiosk-e2", "kiosk-w2"}
    report, _fired, _progress = start(opts, kstore, waves=[4, "100%"], max_failed="10%")
    assert report["status"] == "halted"
    done = report["installed"]
    assert done and all(sim.kiosks[m]["version"] == "2.0.0" for m in done)
    aborted = waves.abort(opts, kstore, rollback=True)
    assert aborted["status"] == "aborted" and sorted(aborted["reverted"]) == sorted(done)
    assert all(sim.kiosks[m]["version"] == "1.0.0" for m in done)
    assert waves.describe(kstore, report["id"])["kiosks"][done[0]]["status"] == "reverted"
    with pytest.raises(KioskInputError, match="is aborted"):
        waves.abort(opts, kstore, report["id"])
    assert sim.promoted == []


def test_what_a_kiosk_answers_is_checked_before_it_is_used(opts, kstore, sim):
    # A hostile kiosk: a relay "address" with a newline, a master list that is not one, a bad version.
    sim.kiosks["kiosk-e1"].update(via="10.0.1.1\nrm -rf /", masters="10.0.1.1", version="1.0; DROP TABLE")
    report, _fired, _progress = start(opts, kstore, per_relay=1)
    assert report["status"] == "done"
    relays = {relay for _m, _v, relay in sim.installs}
    assert all(relay is None or "\n" not in relay for relay in relays)
    assert report["kiosks"]["kiosk-e1"]["relay"] is None
    rows = {row.minion_id: row for row in waves._kiosk_rows(kstore, report["id"])}
    assert rows["kiosk-e1"].previous is None and rows["kiosk-e2"].previous == "1.0.0"


def test_a_wave_that_cannot_be_published_halts_and_can_be_resumed_at_once(opts, kstore, sim, monkeypatch):
    real = waves.fanout.run_jobs

    def master_down(opts_, jobs, timeout):
        if any(job["fun"] == "state.single" for job in jobs.values()):
            raise waves.KioskPublishError(dict.fromkeys(jobs, "publishing failed: the master is not running"))
        return real(opts_, jobs, timeout)

    monkeypatch.setattr(waves.fanout, "run_jobs", master_down)
    report, fired, _progress = start(opts, kstore)
    assert report["status"] == "halted" and "publishing failed" in report["reason"]
    assert [tag for tag, _ in fired] == ["kiosk/release/halted"]
    monkeypatch.setattr(waves.fanout, "run_jobs", real)
    assert waves.resume(opts, kstore)["status"] == "done"


def test_latest_json_that_cannot_be_moved_leaves_the_rollout_halted_until_resumed(opts, kstore, sim, monkeypatch):
    def relays_down(opts_, version, timeout=60):
        raise waves.KioskPublishError({"promote": "publishing failed: the master is not running"})

    monkeypatch.setattr(waves.stage, "promote", relays_down)
    report, fired, _progress = start(opts, kstore)
    assert report["status"] == "halted" and "latest.json could not be moved" in report["reason"]
    assert sorted(report["installed"]) == sorted(sim.kiosks)
    monkeypatch.setattr(
        waves.stage, "promote", lambda opts_, version, timeout=60: sim.promoted.append(version) or ["r"]
    )
    installs = len(sim.installs)
    resumed = waves.resume(opts, kstore)
    assert resumed["status"] == "done" and resumed["promoted_on"] == ["r"] and sim.promoted == ["2.0.0"]
    assert len(sim.installs) == installs
