"""
A campus larger than a relay takes in one call. Relays refuse more than 4096
addresses per ``kiosk.sweep`` (``kiosk:sweep_max_hosts``) and more than 4096
MACs per ``kiosk.wake``. Before, a wake of a 5,000-kiosk campus was refused
whole, and its verification sent the whole campus to every relay as one list,
each relay refused it, and every kiosk was 'unknown'. Now both split the
campus into lists the relays accept and merge the answers.
"""

import pytest

from salt_kiosk import inventory
from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import sweep as ksweep
from salt_kiosk.node import wol
from salt_kiosk.power import actions as power
from salt_kiosk.power import verify

COUNT = 5000


def ip_of(index):
    return f"10.1.{index // 250}.{index % 250 + 1}"


@pytest.fixture
def big_campus(kstore, tmp_path):
    rows = [f"E{n:05d},kiosk-{n:05d},east,,{ip_of(n)},02:00:00:00:{n >> 8:02x}:{n & 255:02x}," for n in range(COUNT)]
    path = tmp_path / "inv.csv"
    path.write_text("code,minion_id,campus,groups,ip,mac,vnc_port\n" + "\n".join(rows) + "\n")
    inventory.import_csv(kstore, str(path))
    return kstore


def sweep_answer(ips):
    """What a relay's kiosk.sweep answers: a refusal over its limit, else every odd address up."""
    try:
        ksweep.parse_hosts(ips)
    except KioskInputError as exc:
        return {"ret": str(exc), "retcode": 1}
    # A lying relay also claims an address it was not asked about.
    return {
        "ret": {"up": [ip for ip in ips if int(ip.split(".")[3]) % 2 == 1] + ["10.9.9.9"], "down": []},
        "retcode": 0,
    }


class Relays:
    """The relays of the campus; the kiosks' minions are off (no test.ping answers)."""

    def __init__(self, silent_on=()):
        self.jobs = None
        self.silent_on = silent_on

    def __call__(self, opts, jobs, timeout):
        self.jobs = jobs
        return {
            key: {
                relay: sweep_answer(job["arg"][0])
                for relay in job["tgt"]
                if job["fun"] == "kiosk.sweep" and (relay, key) not in self.silent_on
            }
            for key, job in jobs.items()
        }


def test_a_campus_over_the_relay_limit_is_swept_in_lists_the_relays_accept(big_campus):
    relays = Relays(silent_on={("relay-e2", "sweep:east:1")})
    results = verify.check({}, big_campus, "campus:east", expect="on", publish=relays)
    sweeps = {key: job for key, job in relays.jobs.items() if key.startswith("sweep:")}
    assert sorted(sweeps) == ["sweep:east:0", "sweep:east:1"]
    assert [len(job["arg"][0]) for job in sweeps.values()] == [4096, COUNT - 4096]
    assert all(job["tgt"] == ["relay-e1", "relay-e2"] for job in sweeps.values())
    assert len(results) == COUNT
    assert all(entry["network"] != "unknown" for entry in results.values())
    second = set(sweeps["sweep:east:1"]["arg"][0])
    for entry in results.values():
        # relay-e2 did not answer for the second list.
        assert entry["relays"] == (["relay-e1"] if entry["ip"] in second else ["relay-e1", "relay-e2"])
    first = results["kiosk-00000"]
    assert first["network"] == "up" and first["ok"] and "seen by relay-e1" in first["reason"]
    assert results["kiosk-00001"]["network"] == "down" and results["kiosk-00001"]["observed"] == "off"
    assert sum(1 for entry in results.values() if entry["ok"]) == COUNT // 2


def test_sweep_chunk_setting(big_campus):
    relays = Relays()
    verify.check({"kiosk": {"sweep_chunk": 1000}}, big_campus, "campus:east", publish=relays)
    assert len([key for key in relays.jobs if key.startswith("sweep:")]) == 5
    for bad in (0, "many", 70000):
        with pytest.raises(KioskInputError, match=r"kiosk:sweep_chunk .* \(accepted: a number of addresses 1-65536"):
            verify.check({"kiosk": {"sweep_chunk": bad}}, big_campus, "campus:east", publish=relays)


def test_a_campus_over_the_relay_limit_is_woken_in_lists_the_relays_accept(big_campus):
    seen = {}

    def relays(opts, jobs, timeout):
        out = {}
        for key, job in jobs.items():
            macs = wol.parse_macs(job["arg"][0])  # what kiosk.wake on a relay checks first
            # relay-e2 does not answer for the second list.
            answering = job["tgt"] if key.endswith(":0") else job["tgt"][:1]
            out[key] = {r: {"ret": {mac: {"packets": 3} for mac in macs}, "retcode": 0} for r in answering}
        return out

    def before_publish(jobs, carriers):
        seen.update(carriers)

    result = power.wake({}, big_campus, "campus:east", publish=relays, before_publish=before_publish)
    assert sorted(seen) == ["east:0", "east:1"]
    assert [len(seen[key]) for key in sorted(seen)] == [4096, COUNT - 4096]
    assert result["ok"] == COUNT and result["failed"] == 0
    kiosks = result["kiosks"]
    assert kiosks["kiosk-00000"]["acked"] == ["relay-e1", "relay-e2"]
    assert kiosks[f"kiosk-{COUNT - 1:05d}"]["acked"] == ["relay-e1"]
    assert kiosks[f"kiosk-{COUNT - 1:05d}"]["silent"] == ["relay-e2"]
    summary = result["campuses"]["east"]
    assert summary["relays_acked"] == ["relay-e1"] and summary["relays_silent"] == ["relay-e2"]
