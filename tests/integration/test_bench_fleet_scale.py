"""
bench/fleet_scale.py and bench/wake_fanout.py at a small size, so that the
scripts keep working. fleet_scale.py: a
loopback fleet of its own (master of masters, four relays) with 2 and then 4
kiosk minions, every operation complete, the table and one RESULT line, and
no daemon left behind. The figures of so small a run say nothing about the
goal (fixed costs hide the growth); the full sizes are run by hand.
"""

import os
import re

import pytest

from tests import benchrun

#: The table's rows, as bench/fleet_scale.py labels them.
OPERATIONS = [
    "fleet start",
    "salt '*' test.ping",
    "returns stored",
    "kiosk_power.wake",
    "kiosk_power.shutdown test",
    "kiosk_inventory.refresh",
    "kiosk_jobs.run test.ping",
    "kiosk_release.publish",
]

# It starts salt-master / salt-syndic / salt-minion daemons of its own.
pytestmark = pytest.mark.fleet


def test_fleet_scale_smoke():
    out = benchrun.run_ok("fleet_scale.py", "--sizes", "2,4", "--release-mb", "1")
    lines = out.splitlines()
    results = [line for line in lines if line.startswith("RESULT ")]
    assert len(results) == 1, out
    assert "sizes=2,4" in results[0] and "incomplete=none" in results[0], results[0]
    for label in OPERATIONS:
        rows = [line for line in lines if line.startswith(label + " ") and line.split()[-1] in ("ok", "OVER")]
        assert len(rows) == 1, f"no table row for {label!r}:\n{out}"
        cells = rows[0][len(label) :].split()
        # N=2 seconds, N=4 seconds, k 2->4, verdict
        assert len(cells) == 4, rows[0]
        assert all(float(cell) > 0 for cell in cells[:2]), rows[0]
    # Where each publish's time went, from the kiosks' own fetch records.
    assert len(re.findall(r"\(publish: [\d.]+ s until the first kiosk fetch", out)) == 2, out
    # Every daemon stopped and its work directory removed.
    workdirs = re.findall(r" in (/\S+kiosk-bench-fleet-scale-\S+)$", out, re.MULTILINE)
    assert len(workdirs) == 2, out
    assert not any(os.path.exists(path) for path in workdirs), workdirs
    left = [args for args in command_lines() if any(path in args for path in workdirs)]
    assert not left, left


def test_wake_fanout_smoke():
    out = benchrun.run_ok("wake_fanout.py", "--kiosks", "40", "--runs", "1")
    results = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1, out
    assert "kiosks=40 relays=4 repeat=3" in results[0], results[0]
    assert "exactly repeat per relay per MAC: yes" in results[0], out
    assert "kiosks ok 40/40" in out, out


def command_lines():
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    lines.append(handle.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return lines
