"""
The one clock and the one timestamp format of salt-kiosk.

The database stores naive UTC datetimes to the second (:func:`utcnow`); every
timestamp the library returns or fires is ISO 8601 in UTC with a ``Z`` suffix
(:func:`iso`), e.g. ``2026-11-25T18:04:58Z``.
"""

import datetime

UTC = datetime.timezone.utc


def utcnow():
    """Naive UTC timestamp to the second, as stored in the database."""
    return datetime.datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def iso(moment):
    """
    ``moment`` (a naive UTC datetime from the database, or an aware one) as ISO
    8601 UTC with a ``Z`` suffix; ``None`` stays ``None``.
    """
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat() + "Z"


def now_iso():
    """The current time as ISO 8601 UTC with a ``Z`` suffix."""
    return iso(utcnow())
