"""
Security issue 13, input limits (finding 11): the Wake-on-LAN destination and
send errors. ``wol.send`` runs in a new network namespace that has nothing but
loopback (``unshare --net``, needs root), with the packets captured there, so
no packet can leave this machine, whatever the code under test does. The
other input limits are in tests/unit/security/test_input_limits.py.
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

WAKE_CHILD = r"""
import json, socket, sys
from salt_kiosk.node import wol
case = json.loads(sys.argv[1])
listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
listener.bind(("0.0.0.0", 0))
port = listener.getsockname()[1]
if case.pop("closed_port", False):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
outcome = {"port": port}
try:
    outcome["result"] = wol.send(case.pop("macs"), port=port, **case)
except BaseException as exc:
    outcome["error"] = [cls.__name__ for cls in type(exc).__mro__]
    outcome["message"] = str(exc)
listener.settimeout(0.5)
received = []
while True:
    try:
        data, _addr = listener.recvfrom(4096)
    except socket.timeout:
        break
    received.append(data.hex())
outcome["received"] = len(received)
print(json.dumps(outcome))
"""


def wake_in_own_netns(**case):
    """
    Run ``wol.send`` in a new network namespace that has nothing but loopback
    (127.0.0.0/8), with a UDP listener on 0.0.0.0; return what happened.
    """
    done = subprocess.run(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            'ip link set lo up && exec "$0" -c "$1" "$2"',
            sys.executable,
            WAKE_CHILD,
            json.dumps(case),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


MACS = ["02:00:00:00:0e:01", "02:00:00:00:0e:02", "02:00:00:00:0e:03"]


@pytest.mark.parametrize(
    "broadcast, why",
    [
        ("127.0.0.1", "not the broadcast address of any network of this node"),
        ("127.0.0.1/32", "not the broadcast address of any network of this node"),
        ("10.1.255.255", "not the broadcast address of any network of this node"),
        ("224.0.0.1", "is a multicast address"),
        ("239.255.255.250", "is a multicast address"),
        ("0.0.0.0", "is an unspecified"),
    ],
)
def test_wake_destination_must_be_a_broadcast(broadcast, why):
    outcome = wake_in_own_netns(macs=MACS, broadcast=broadcast)
    assert "KioskInputError" in outcome.get("error", []), outcome
    assert why in outcome["message"] and repr(broadcast) in outcome["message"]
    assert "accepted: 255.255.255.255" in outcome["message"] and "nothing was sent" in outcome["message"]
    assert outcome["received"] == 0
    # The same unicast host to a port where nothing listens: refused the
    # same way, not a ConnectionRefusedError traceback.
    if broadcast == "127.0.0.1":
        closed = wake_in_own_netns(macs=MACS, broadcast=broadcast, closed_port=True)
        assert "KioskInputError" in closed.get("error", []), closed
    # What is accepted still works: the loopback network's broadcast.
    good = wake_in_own_netns(macs=MACS, broadcast="127.0.0.0/8", repeat=2)
    assert good.get("error") is None and good["received"] == 6, good
    assert good["result"][MACS[0]] == {"address": "127.255.255.255", "port": good["port"], "packets": 2}


def test_wake_send_error_is_a_clear_error_not_a_traceback():
    # allow_unicast=True to a host where nothing listens: the connected UDP
    # socket reports the ICMP port unreachable on the next send.
    outcome = wake_in_own_netns(macs=MACS, broadcast="127.0.0.1", allow_unicast=True, repeat=3, closed_port=True)
    assert "ConnectionRefusedError" not in outcome.get("error", []), outcome
    assert "CommandExecutionError" in outcome.get("error", []), outcome
    message = outcome["message"]
    assert f"sending magic packets to 127.0.0.1:{outcome['port']} failed after" in message
    assert "of 9 packets" in message and "Connection refused" in message
    # allow_unicast to a listening host delivers, and says where.
    listening = wake_in_own_netns(macs=MACS[:1], broadcast="127.0.0.1", allow_unicast=True, repeat=2)
    assert listening.get("error") is None and listening["received"] == 2, listening
    # Multicast and 0.0.0.0 stay refused even then.
    for never in ("224.0.0.1", "0.0.0.0"):
        refused = wake_in_own_netns(macs=MACS, broadcast=never, allow_unicast=True)
        assert "KioskInputError" in refused.get("error", []) and refused["received"] == 0, refused
