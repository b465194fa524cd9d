"""
Salt settings that make a master-of-masters -> syndic -> minion tree work.

Used by the test fleet, the demo and documented in the README. The facts behind
them (measured with Salt 3008.4):

* ``transport: tcp`` on every daemon. With the default zeromq transport the
  syndic's request channel to the master of masters dies after its first
  request, and every later forward times out.
* Each syndic node has its own address; its salt-master and salt-syndic read the
  same ``master.d``. The syndic connects to the top master's publisher using its
  own ``publish_port``, so every syndic node's ``publish_port`` equals the top
  master's (no clash, the addresses differ).
* Ports are integers: with tcp a quoted port stops the syndic's master from
  starting.
* The top master has ``order_masters: True`` and a ``master_id`` (returns are
  dropped without one); ``syndic_wait`` is the floor of every call it makes.

A standby master of masters (measured with Salt 3008.4, tcp):

* Both masters of masters listen on the same ``publish_port`` and ``ret_port``,
  each on its own address, and share one master key pair (a syndic caches one
  master key).
* ``syndic_master`` as a list (one salt-syndic serving both) works while both
  live: each return goes back to the master that published the job, provided
  that master's ``master_id`` is its address exactly as the list names it (the
  syndic looks the job's ``master_id`` up among its ``syndic_master`` entries
  and otherwise picks one at random). When one of them dies the syndic stops
  forwarding to both: every forward to the dead master blocks, because the tcp
  request client reconnects forever before its timeout starts (the unreachable
  master is never detected; Salt #39439). Returns to the live master stop too.
* So each relay runs one salt-syndic per master of masters, each with a single
  ``syndic_master`` (:func:`syndic` with ``name`` for the second one's pid and
  log files). A dead master of masters then stalls only its own syndic.
"""


def mom(address, publish_port, ret_port, master_id="mom", syndic_wait=1, auto_accept=False):
    """
    Master of masters (the central master). ``auto_accept`` accepts the syndics'
    keys without ``salt-key`` (a loopback demo or test fleet; not production).
    """
    return {
        "auto_accept": bool(auto_accept),
        "interface": address,
        "publish_port": int(publish_port),
        "ret_port": int(ret_port),
        "transport": "tcp",
        "order_masters": True,
        "master_id": master_id,
        "syndic_wait": int(syndic_wait),
    }


def syndic_master(address, ret_port, mom_publish_port, auto_accept=False):
    """The salt-master of a syndic node (a campus relay)."""
    return {
        "auto_accept": bool(auto_accept),
        "interface": address,
        "publish_port": int(mom_publish_port),
        "ret_port": int(ret_port),
        "transport": "tcp",
    }


def syndic(mom_address, mom_ret_port, name=None):
    """
    A salt-syndic of a syndic node, serving the master of masters at
    ``mom_address``. A relay under a leader and a standby master of masters
    runs two, one per master of masters (see the module notes); ``name`` gives
    the second its own pid and log files (``run/syndic-<name>.pid``).
    """
    if isinstance(mom_address, (list, tuple)):
        raise ValueError(
            f"syndic_master {list(mom_address)!r}: give one master of masters per salt-syndic "
            "(a syndic with a list stops forwarding when one of them dies; see salt_kiosk.topology)"
        )
    config = {
        "syndic_master": mom_address,
        "syndic_master_port": int(mom_ret_port),
        "transport": "tcp",
    }
    if name is not None:
        config["syndic_pidfile"] = f"run/syndic-{name}.pid"
        config["syndic_log_file"] = f"logs/syndic-{name}.log"
    return config


def minion(master_address, master_ret_port, publish_port=None):
    """
    A minion below a syndic node: the relay's own minion or a kiosk.
    ``master_address`` may be a list: every relay of the kiosk's campus
    (multi-master; the relays then share ``master_ret_port`` and one master
    key pair).
    """
    config = {
        "master": master_address,
        "master_port": int(master_ret_port),
        "transport": "tcp",
    }
    if publish_port is not None:
        config["publish_port"] = int(publish_port)
    return config
