"""
Firing salt-kiosk events on the master's event bus (from runners and engines,
which run in the master's processes).
"""

import salt.utils.event


def fire_master(opts, data, tag):
    """Fire ``data`` under ``tag`` on the master event bus described by ``opts``."""
    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as bus:
        bus.fire_event(data, tag)
