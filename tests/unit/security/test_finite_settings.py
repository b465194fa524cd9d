"""
Settings that are numbers refuse NaN and infinity, naming the setting: a NaN
threshold never compares (no alert ever fires), a NaN circuit-breaker delay
never expires, a NaN presence timeout crashed the verification half-way.
"""

import math

import pytest

from salt_kiosk import inventory
from salt_kiosk.errors import KioskInputError
from salt_kiosk.jobs import writer
from salt_kiosk.node import sensors
from salt_kiosk.power import verify

CSV = "code,minion_id,campus,groups,ip,mac,vnc_port\nE01,kiosk-e1,east,opd,10.1.0.11,02:00:00:00:0e:01,5901\n"
NOT_FINITE = (math.nan, math.inf, -math.inf)


@pytest.mark.parametrize("bad", NOT_FINITE)
@pytest.mark.parametrize("name", ["temperature", "humidity"])
def test_sensor_thresholds_must_be_finite(name, bad):
    for value in ([bad, 30], [5, bad]):
        with pytest.raises(KioskInputError, match=f"{name} threshold .* finite numbers"):
            sensors.parse_config({"driver": "simulated", name: value})


@pytest.mark.parametrize("bad", [*NOT_FINITE, "nan", -1])
def test_returner_retry_after_must_be_finite(tmp_path, bad):
    opts = {"cachedir": str(tmp_path), "kiosk_mysql": {"db": "sqlite://", "retry_after": bad}}
    with pytest.raises(KioskInputError, match=r"kiosk_mysql:retry_after .* is out of range \(accepted: seconds"):
        writer.settings(opts)
    assert writer.settings({"cachedir": str(tmp_path), "kiosk_mysql": {"db": "sqlite://"}})["retry_after"] == 10


@pytest.mark.parametrize("bad", [math.nan, math.inf, "soon", 0])
def test_presence_timeout_is_checked_before_anything_is_published(opts, kstore, tmp_path, bad):
    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    opts = dict(opts, kiosk=dict(opts["kiosk"], presence_timeout=bad))
    with pytest.raises(KioskInputError, match=r"kiosk:presence_timeout .* is out of range \(accepted: whole seconds"):
        verify.check(opts, kstore, "*", expect="on", publish=lambda *a: pytest.fail("published"))
