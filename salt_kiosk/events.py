"""
Firing salt-kiosk events on the master's event bus (from runners and engines,
which run in the master's processes).
"""

import salt.utils.event


def fire_master(opts, data, tag):
    """Fire ``data`` under ``tag`` on the master event bus described by ``opts``."""
    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as bus:
        bus.fire_event(data, tag)


class Burst:
    """
    Coalesces a burst of events into one action: the action is due once no
    event was noted for ``quiet`` seconds, or ``longest`` seconds after the
    first noted event, whichever comes first (a steady stream cannot delay it
    for ever). The scheduler engine re-plans once for a thousand rule changes.
    """

    def __init__(self, quiet=0.5, longest=5.0):
        self.quiet = quiet
        self.longest = longest
        self.first = self.last = None
        self.reason = None

    @property
    def pending(self):
        """True while an event is noted and its action not taken."""
        return self.first is not None

    def note(self, reason, now):
        """An event arrived at monotonic time ``now``."""
        if self.first is None:
            self.first = now
        self.last = now
        self.reason = reason

    def wait(self, idle):
        """How long to wait for the next event: ``idle`` when nothing is pending."""
        return self.quiet if self.pending else idle

    def take(self, now):
        """The reason when the action is due at ``now`` (and forget the burst), else None."""
        if self.first is None or (now - self.last < self.quiet and now - self.first < self.longest):
            return None
        reason = self.reason
        self.first = self.last = self.reason = None
        return reason
