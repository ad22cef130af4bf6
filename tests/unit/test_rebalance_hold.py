"""What the lean consumer hands to the streams around a rebalance; the real case (a worker
restarted on an empty disk routing nothing) is in tests/integration/test_pipeline_restart.py."""

from __future__ import annotations

from streams.faust_ext.consumer import RebalanceHold

CHANGELOG = "app-users-changelog"
EVENTS = "notifications.events"


def test_outside_a_rebalance_everything_passes_and_no_seek_is_due() -> None:
    hold = RebalanceHold({CHANGELOG})
    assert hold.admit(EVENTS, rebalancing=False)
    assert hold.admit(CHANGELOG, rebalancing=False)
    assert not hold.seek_due(rebalancing=False)


def test_changelog_records_pass_during_a_rebalance_stream_records_wait() -> None:
    hold = RebalanceHold({CHANGELOG})
    assert hold.admit(CHANGELOG, rebalancing=True)
    assert not hold.seek_due(rebalancing=False)  # nothing held back: no seek
    assert not hold.admit(EVENTS, rebalancing=True)
    assert hold.admit(CHANGELOG, rebalancing=True)


def test_once_a_record_is_held_no_stream_record_passes_until_the_seek() -> None:
    hold = RebalanceHold({CHANGELOG})
    assert not hold.admit(EVENTS, rebalancing=True)
    # The rebalance ended in the middle of the fetch: later records of it must not overtake.
    assert not hold.admit(EVENTS, rebalancing=False)
    assert not hold.seek_due(rebalancing=True)  # still rebalancing: not yet
    assert hold.seek_due(rebalancing=False)
    assert not hold.seek_due(rebalancing=False)  # once
    assert hold.admit(EVENTS, rebalancing=False)
