"""
Why each relay runs one salt-syndic per master of masters: the measured
behaviour of a single salt-syndic with ``syndic_master`` as a list (Salt
3008.4, tcp). While both masters of masters live, each reaches the relay and
gets its own returns back. When one of them is really stopped, the syndic stops
forwarding returns to the live one too: forwards to the dead master block,
since the tcp request client reconnects forever before its timeout starts (an
unreachable master is never detected: Salt #39439; multi-syndic's PR #14690
warns that down masters block the syndic). If Salt fixes this, this test fails
and the topology can be simplified.
"""

import contextlib
import os
import shutil
import time

import pytest
from pytestshellutils.utils import ports

from salt_kiosk import topology

pytestmark = pytest.mark.fleet

MOM_A, MOM_B, RELAY = "127.0.3.31", "127.0.3.32", "127.0.3.33"


@pytest.fixture(scope="module")
def list_syndic_fleet(salt_factories):
    pub, ret, relay_ret = (ports.get_unused_localhost_port() for _ in range(3))
    moms = [
        salt_factories.salt_master_daemon(
            name, overrides=topology.mom(address, pub, ret, master_id=address, auto_accept=True)
        )
        for name, address in (("list-mom-a", MOM_A), ("list-mom-b", MOM_B))
    ]
    with contextlib.ExitStack() as stack:
        stack.enter_context(moms[0].started())
        os.makedirs(moms[1].config["pki_dir"], exist_ok=True)
        for name in ("master.pem", "master.pub"):
            shutil.copy2(os.path.join(moms[0].config["pki_dir"], name), os.path.join(moms[1].config["pki_dir"], name))
        stack.enter_context(moms[1].started())
        syndic = moms[0].salt_syndic_daemon(
            "list-relay",
            # What topology.syndic refuses: one syndic for both masters of masters.
            overrides={"syndic_master": [MOM_A, MOM_B], "syndic_master_port": ret, "transport": "tcp"},
            master_overrides=topology.syndic_master(RELAY, relay_ret, pub, auto_accept=True),
            minion_overrides=topology.minion(RELAY, relay_ret, pub),
        )
        stack.enter_context(syndic.master.started())
        stack.enter_context(syndic.started())
        stack.enter_context(syndic.minion.started())
        yield moms


def relay_answers(mom, timeout=10):
    ret = mom.salt_cli(timeout=timeout).run("test.ping", minion_tgt="list-relay")
    return ret.data is True or (isinstance(ret.data, dict) and ret.data.get("list-relay") is True)


def test_a_syndic_with_a_list_stops_serving_the_live_master_when_the_other_dies(list_syndic_fleet):
    mom_a, mom_b = list_syndic_fleet
    deadline = time.monotonic() + 90
    while not (relay_answers(mom_a) and relay_answers(mom_b)):
        assert time.monotonic() < deadline, "the relay never answered both masters of masters"
        time.sleep(1)
    mom_a.terminate()
    # Measured: the live master of masters gets no answer any more.
    answered = [relay_answers(mom_b, timeout=10) for _ in range(2)]
    assert answered == [False, False]
