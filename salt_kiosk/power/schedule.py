"""
Schedule computation: the effective power timeline of each kiosk.

For each instant the highest-ranked rule covering it decides the state (rank:
priority, then target specificity id > group > campus > ``*``, then the newer
rule); outside every rule the configured default state holds. The transitions
of that timeline are the power actions.

Times are in each campus's time zone. On DST days a window boundary that falls
in the skipped hour takes effect when the clock jumps past it, and one that
falls in the repeated hour takes effect at its first occurrence.

Kiosks that share a time zone and the same set of applicable rules share one
computed timeline, which keeps a plan over thousands of kiosks fast.
"""

import datetime
import fnmatch
import operator
import re
import zoneinfo

from salt_kiosk.errors import KioskInputError

UTC = datetime.timezone.utc
DAY = datetime.timedelta(days=1)
MAX_SPAN = datetime.timedelta(days=62)


def local_to_utc(naive, tz):
    """UTC instant of the local wall time ``naive`` in ``tz`` (see module docs for DST)."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # In a gap: the clock jumps past ``naive`` at the transition instant,
    # which lies between the two possible conversions.
    lo, hi = sorted((first, naive.replace(tzinfo=tz, fold=1).astimezone(UTC)))
    offset = lo.astimezone(tz).utcoffset()
    while hi - lo > datetime.timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)


def parse_when(value, tz, field="when"):
    """
    Return an aware UTC datetime for an ISO date or datetime. A datetime with
    an offset is absolute; a naive one and a date (its midnight) are local
    times in ``tz``.
    """
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, datetime.date):
        moment = datetime.datetime.combine(value, datetime.time())
    else:
        text = str(value).strip()
        try:
            moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise KioskInputError(
                f"{field}: {value!r} is not an ISO 8601 date or datetime (accepted: 2026-12-24, "
                "2026-12-24T08:00, 2026-12-24T08:00:00+08:00)"
            ) from None
    if moment.tzinfo is None:
        return local_to_utc(moment, tz)
    return moment.astimezone(UTC)


def zone(name):
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise KioskInputError(f"timezone: {name!r} is not a known time zone (accepted: zoneinfo names)") from None


def windows(rule, tz, since, until):
    """The UTC windows ``(start, end, rule)`` of ``rule`` overlapping [since, until)."""
    first_day = (since.astimezone(tz) - DAY).date()
    last_day = until.astimezone(tz).date()
    day = first_day
    out = []
    while day <= last_day:
        if rule.applies_on(day):
            midnight = datetime.datetime.combine(day, datetime.time())
            start = local_to_utc(midnight + datetime.timedelta(minutes=rule.start), tz)
            if rule.end > rule.start:
                end_local = midnight + datetime.timedelta(minutes=rule.end)
            else:
                end_local = midnight + DAY + datetime.timedelta(minutes=rule.end)
            end = local_to_utc(end_local, tz)
            if end > since and start < until and end > start:
                out.append((max(start, since), min(end, until), rule))
        day += DAY
    return out


def timeline(rule_set, tz, since, until, default_state, window_cache=None):
    """
    Segments ``[(start, end, state, rule or None)]`` covering [since, until),
    adjacent segments with the same state and rule merged. ``window_cache``
    (a dict) shares the windows of a rule between kiosks of the same zone.
    """
    spans = []
    for rule in rule_set:
        if window_cache is None:
            spans.extend(windows(rule, tz, since, until))
            continue
        key = (id(rule), tz.key, since, until)
        found = window_cache.get(key)
        if found is None:
            found = window_cache[key] = windows(rule, tz, since, until)
        spans.extend(found)
    starts, ends = {}, {}
    for start, end, rule in spans:
        starts.setdefault(start, []).append(rule)
        ends.setdefault(end, []).append(rule)
    cuts = sorted({since, until, *starts, *ends})
    active = {}  # rule -> how many of its windows cover the instant
    segments = []
    rank = operator.attrgetter("key")
    for start, end in zip(cuts, cuts[1:]):
        for rule in ends.get(start, ()):
            left = active[rule] - 1
            if left:
                active[rule] = left
            else:
                del active[rule]
        for rule in starts.get(start, ()):
            active[rule] = active.get(rule, 0) + 1
        if active:
            best = max(active, key=rank) if len(active) > 1 else next(iter(active))
            state, name = best.state, best.name
        else:
            state, name = default_state, None
        if segments and segments[-1][2] == state and segments[-1][3] == name:
            segments[-1] = (segments[-1][0], end, state, name)
        else:
            segments.append((start, end, state, name))
    return segments


def transitions(segments):
    """``[(at, state, rule)]`` where the state changes between segments."""
    return [(seg[0], seg[2], seg[3]) for prev, seg in zip(segments, segments[1:]) if seg[2] != prev[2]]


class RuleIndex:
    """Finds the rules that apply to a kiosk without testing every rule."""

    def __init__(self, rules):
        self.all, self.campus, self.group, self.exact, self.globs = [], {}, {}, {}, []
        for rule in rules:
            if rule.kind == "all":
                self.all.append(rule)
            elif rule.kind == "campus":
                self.campus.setdefault(rule.value, []).append(rule)
            elif rule.kind == "group":
                self.group.setdefault(rule.value, []).append(rule)
            elif any(ch in rule.value for ch in "*?["):
                self.globs.append((re.compile(fnmatch.translate(rule.value)), rule))
            else:
                self.exact.setdefault(rule.value, []).append(rule)

    def for_kiosk(self, kiosk):
        found = list(self.all)
        found.extend(self.campus.get(kiosk["campus"], ()))
        for group in kiosk["groups"]:
            found.extend(self.group.get(group, ()))
        found.extend(self.exact.get(kiosk["minion_id"], ()))
        found.extend(rule for pattern, rule in self.globs if pattern.match(kiosk["minion_id"]))
        return found


def _iso(moment, tz):
    return moment.astimezone(tz).isoformat(timespec="minutes")


def compute(kiosks, campuses, rule_list, default_state, since=None, until=None, now=None):
    """
    Return ``{minion id: (campus name, tz, segments)}`` for ``kiosks`` between
    ``since`` and ``until`` (see :func:`plan`); segments are UTC.
    """
    index = RuleIndex(rule_list)
    now = (now or datetime.datetime.now(UTC)).replace(second=0, microsecond=0)
    cache, result, zones, window_cache = {}, {}, {}, {}
    for kiosk in kiosks:
        campus = campuses.get(kiosk["campus"])
        if campus is None:
            raise KioskInputError(f"kiosk {kiosk['minion_id']}: campus {kiosk['campus']!r} is not configured")
        tz = zones.get(campus["timezone"]) or zones.setdefault(campus["timezone"], zone(campus["timezone"]))
        start = parse_when(since, tz, "since") if since not in (None, "") else now
        end = parse_when(until, tz, "until") if until not in (None, "") else start + DAY
        if end <= start:
            raise KioskInputError(f"until: {until!r} is not after since {since!r}")
        if end - start > MAX_SPAN:
            raise KioskInputError(f"until: the plan may cover at most {MAX_SPAN.days} days")
        applicable = index.for_kiosk(kiosk)
        key = (campus["timezone"], start, end, tuple(sorted(id(r) for r in applicable)))
        if key not in cache:
            cache[key] = timeline(applicable, tz, start, end, default_state, window_cache)
        result[kiosk["minion_id"]] = (kiosk["campus"], tz, cache[key])
    return result


def plan(kiosks, campuses, rule_list, default_state, since=None, until=None, now=None, timeline=False):
    """
    Return ``{minion id: {campus, timezone, state, rule, transitions}}`` for
    ``kiosks`` between ``since`` and ``until`` (ISO dates/datetimes; naive ones
    are local to each kiosk's campus; default: now to +24 h): ``state`` and
    ``rule`` hold at ``since``, ``transitions`` are the changes of state after
    it. With ``timeline`` each kiosk also has its ``timeline``: every segment
    (``from``, ``until``, ``state``, ``rule``), a new one wherever the deciding
    rule changes, even when the state does not. Times are shown in the campus's
    time zone.
    """
    formatted, result, stamps = {}, {}, {}

    def iso(moment, tz):
        key = (moment, tz.key)
        text = stamps.get(key)
        if text is None:
            text = stamps[key] = _iso(moment, tz)
        return text

    for minion, (campus, tz, segments) in compute(
        kiosks, campuses, rule_list, default_state, since, until, now
    ).items():
        key = (id(segments), tz.key)
        shaped = formatted.get(key)
        if shaped is None:
            shaped = formatted[key] = {
                "state": segments[0][2],
                "rule": segments[0][3],
                "transitions": [{"at": iso(at, tz), "state": st, "rule": r} for at, st, r in transitions(segments)],
            }
            if timeline:
                shaped["timeline"] = [
                    {"from": iso(s, tz), "until": iso(e, tz), "state": st, "rule": r} for s, e, st, r in segments
                ]
        result[minion] = {"campus": campus, "timezone": tz.key, **shaped}
    return result


def state_at(kiosk, campus, rule_list, default_state, when):
    """The state of ``kiosk`` at ``when`` and the rule deciding it."""
    tz = zone(campus["timezone"])
    moment = parse_when(when, tz)
    applicable = RuleIndex(rule_list).for_kiosk(kiosk)
    start, _end, state, rule = timeline(applicable, tz, moment, moment + datetime.timedelta(minutes=1), default_state)[
        0
    ]
    decider = next((r for r in applicable if r.name == rule), None)
    return {
        "kiosk": kiosk["minion_id"],
        "code": kiosk["code"],
        "campus": kiosk["campus"],
        "at": _iso(start, tz),
        "state": state,
        "rule": rule,
        "priority": decider.priority if decider else None,
    }
