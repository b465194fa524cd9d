from salt_kiosk.events import Burst


def test_a_burst_of_events_is_one_action_when_quiet_or_after_the_longest_wait():
    burst = Burst(quiet=0.5, longest=5)
    assert burst.take(0) is None and burst.wait(5) == 5
    for moment in (10.0, 10.1, 10.2):
        burst.note("kiosk/rules/changed", moment)
    assert burst.wait(5) == 0.5
    assert burst.take(10.4) is None  # not quiet yet
    assert burst.take(10.7) == "kiosk/rules/changed"
    assert burst.take(10.8) is None and not burst.pending
    # A steady stream does not delay the action past ``longest``.
    moment = 20.0
    while burst.take(moment) is None:
        burst.note("kiosk/inventory/changed", moment)
        moment += 0.25
    assert 25.0 <= moment <= 25.25
