"""Events of users being flushed wait; everyone else's go on, and each user's order is kept."""

from __future__ import annotations

import random

from streams.worker.flush_parking import FlushParking


def _parking() -> FlushParking[tuple[bytes, int]]:
    return FlushParking(lambda event: event[0])


def test_without_a_flush_every_event_goes_on() -> None:
    parking = _parking()
    batch = [(b"a", 1), (b"b", 2)]
    assert parking.admit(batch) == batch and len(parking) == 0 and parking.release() == []


def test_only_the_flushed_users_events_wait_until_the_flush_ends() -> None:
    parking = _parking()
    parking.begin_flush({b"a"})
    assert parking.admit([(b"a", 1), (b"b", 2), (b"a", 3), (b"c", 4)]) == [(b"b", 2), (b"c", 4)]
    assert len(parking) == 2
    assert parking.release() == []  # the flush is still under way
    parking.end_flush()
    assert parking.release() == [(b"a", 1), (b"a", 3)] and len(parking) == 0
    assert parking.admit([(b"a", 5)]) == [(b"a", 5)]


def test_a_user_with_parked_events_keeps_parking_after_the_flush_until_released() -> None:
    # The flush ended, but its parked events are not routed yet: a later event of that user must
    # not overtake them.
    parking = _parking()
    parking.begin_flush({b"a"})
    parking.admit([(b"a", 1)])
    parking.end_flush()
    assert parking.admit([(b"a", 2), (b"b", 3)]) == [(b"b", 3)]
    assert parking.release() == [(b"a", 1), (b"a", 2)]


def test_release_keeps_the_events_of_users_in_the_next_flush() -> None:
    parking = _parking()
    parking.begin_flush({b"a", b"b"})
    parking.admit([(b"a", 1), (b"b", 2), (b"a", 3)])
    parking.end_flush()
    parking.begin_flush({b"b"})  # b is flushed again before its events were released
    assert parking.release() == [(b"a", 1), (b"a", 3)]
    assert parking.admit([(b"b", 4), (b"a", 5)]) == [(b"a", 5)]
    parking.end_flush()
    assert parking.release() == [(b"b", 2), (b"b", 4)]


def test_random_flushes_route_every_event_once_and_each_user_in_order() -> None:
    rng = random.Random(7)
    parking = _parking()
    routed: list[tuple[bytes, int]] = []
    users = [bytes([c]) for c in b"abcdefgh"]
    flushing: set[bytes] = set()
    for offset in range(5_000):
        step = rng.random()
        if step < 0.05:
            flushing = set(rng.sample(users, 3))
            parking.begin_flush(flushing)
        elif step < 0.10:
            flushing = set()
            parking.end_flush()
        now = (parking.release() if step < 0.2 else []) + parking.admit([(rng.choice(users), offset)])
        assert not {user for user, _ in now} & flushing  # nobody's events go while they are flushed
        routed += now
    parking.end_flush()
    routed += parking.release()
    assert sorted(offset for _, offset in routed) == list(range(5_000))
    for user in users:
        offsets = [offset for who, offset in routed if who == user]
        assert offsets == sorted(offsets)
