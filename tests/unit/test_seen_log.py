"""The dedupe memory as one string: lookups, order, pruning, awkward ids, the version-1 form."""

import json
import random

from streams.core.routing import UserState
from streams.core.routing.seen import SeenEntry, SeenLog
from streams.core.routing.state import STATE_VERSION

AWKWARD_IDS = ["e1", "e10", "xe1", "a b", "a%20b", "a,b", "%", " ", ",", "ünï-😀", "a b,c%d"]


def test_lookup_finds_only_the_exact_id():
    log = SeenLog()
    log.remember("e10", 0, 1, 100)
    log.remember("xe1", 0, 2, 101)
    assert log.get("e1") is None  # neither a prefix nor a suffix of another id matches
    log.remember("e1", 1, 3, 102)
    assert log.get("e1") == SeenEntry(1, 3, 102)
    assert log.get("e10") == SeenEntry(0, 1, 100)
    assert log.ids() == ["e10", "xe1", "e1"]


def test_ids_with_separators_or_percent_do_not_collide():
    log = SeenLog()
    for offset, event_id in enumerate(AWKWARD_IDS):
        log.remember(event_id, 2, offset, 1_000 + offset)
    assert len(log) == len(AWKWARD_IDS)
    for offset, event_id in enumerate(AWKWARD_IDS):
        assert log.get(event_id) == SeenEntry(2, offset, 1_000 + offset), event_id
    assert log.get("a") is None and log.get("b") is None and log.get("a%2520b") is None


def test_remembering_an_id_again_moves_it_to_the_end():
    log = SeenLog()
    for i, event_id in enumerate(["a", "b", "c"]):
        log.remember(event_id, 0, i, 10 + i)
    log.remember("a", 1, 7, 50)
    assert log.ids() == ["b", "c", "a"]
    assert log.get("a") == SeenEntry(1, 7, 50)
    log.remember("a", 1, 8, 60)  # the last entry replaced too
    assert log.ids() == ["b", "c", "a"] and log.get("a") == SeenEntry(1, 8, 60)


def test_prune_drops_the_old_head_only():
    log = SeenLog()
    for i, seen_at in enumerate([10, 20, 30, 5, 40]):  # 5: out of order (clock skew)
        log.remember(f"e{i}", 0, i, seen_at)
    assert not log.prune(10)
    assert log.prune(25)
    assert log.ids() == ["e2", "e3", "e4"]  # e3 is older but behind a fresh entry: kept
    assert log.prune(100) and not log and len(log) == 0 and log.text == ""
    assert not log.prune(100)


def test_matches_a_dict_under_random_operations():
    rng = random.Random(7)
    log, model = SeenLog(), {}
    ids = AWKWARD_IDS + [f"evt-{i}" for i in range(40)]
    now = 0
    for step in range(3_000):
        now += rng.randrange(3)
        if rng.random() < 0.1:
            cutoff = now - 40
            log.prune(cutoff)
            while model and next(iter(model.values()))[2] < cutoff:
                del model[next(iter(model))]
        event_id = rng.choice(ids)
        expected = model.get(event_id)
        assert log.get(event_id) == (SeenEntry(*expected) if expected else None), step
        if rng.random() < 0.5:
            partition = rng.randrange(4)
            log.remember(event_id, partition, step, now)
            model.pop(event_id, None)
            model[event_id] = (partition, step, now)
    assert len(log) == len(model)
    assert log.ids() == [_escaped(event_id) for event_id in model]  # same order


def _escaped(event_id: str) -> str:
    """The id as ``ids()`` shows it."""
    log = SeenLog()
    log.remember(event_id, 0, 0, 0)
    return log.ids()[0]


def test_version_1_state_is_read_and_written_back_as_the_current_version():
    v1 = {"v": 1, "user_id": "u1", "seen": {"e1": [0, 5, 100], "a b": [1, 6, 200]}}
    state = UserState.from_dict(json.loads(json.dumps(v1)))
    assert state.seen.get("e1") == SeenEntry(0, 5, 100)
    assert state.seen.get("a b") == SeenEntry(1, 6, 200)
    assert state.seen.ids() == ["e1", "a%20b"]
    stored = state.to_dict()
    assert stored["v"] == STATE_VERSION and isinstance(stored["seen"], str)
    assert UserState.from_dict(json.loads(json.dumps(stored))) == state
