"""The benchmark's pure arithmetic: percentiles, pacing, sustained rate, profile summary, /proc/<pid>/io."""

import math

import pytest

from bench.profile import category, parse_frame, summarize_collapsed
from bench.stats import Schedule, Segment, latency_by_window, latency_summary, percentile, sustained_rate
from bench.systems import parse_write_bytes, proc_disk_write_bytes
from bench.workload import EventStream, WorkloadSpec, parse_mix


def test_percentile_is_nearest_rank():
    values = [1, 2, 3, 4]
    assert percentile(values, 50) == 2
    assert percentile(values, 75) == 3
    assert percentile(values, 100) == 4
    assert percentile(values, 0) == 1
    assert percentile(list(range(1, 101)), 99) == 99
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_latency_summary_sorts_and_reports_the_tail():
    summary = latency_summary([5, 1, 100, 3, 2])
    assert summary["count"] == 5
    assert summary["p50"] == 3
    assert summary["max"] == 100
    assert summary["p99"] == 100
    assert math.isnan(latency_summary([])["p50"])


def test_constant_schedule_offers_rate_times_elapsed():
    s = Schedule.constant(1000, 2.0)
    assert s.events_due(0) == 0
    assert s.events_due(0.0015) == 1
    assert s.events_due(1.0) == 1000
    assert s.events_due(5.0) == 2000  # capped at the end of the schedule
    assert s.total_events() == 2000


def test_rates_with_fractions_do_not_lose_an_event_to_rounding():
    assert Schedule.constant(0.1, 30).total_events() == 3
    assert Schedule.constant(3.3, 10).total_events() == 33


def test_spike_schedule_integrates_each_segment():
    s = Schedule([Segment(2, 100), Segment(1, 1000), Segment(2, 100)])
    assert s.events_due(2) == 200
    assert s.events_due(2.5) == 700
    assert s.events_due(3) == 1200
    assert s.total_events() == 1400
    assert s.segment_at(0.5) == 0
    assert s.segment_at(2.1) == 1
    assert s.segment_at(99) == 2


def test_wait_until_next_event_is_exact_and_never_negative():
    s = Schedule.constant(100, 1)  # one event every 10 ms: event k is due at (k + 1) * 10 ms
    assert s.wait_s(0, 0.0) == pytest.approx(0.01)
    assert s.wait_s(5, 0.055) == pytest.approx(0.005)
    assert s.wait_s(5, 0.2) == 0.0  # already late: send now
    spike = Schedule([Segment(1, 10), Segment(1, 100)])
    assert spike.wait_s(10, 1.0) == pytest.approx(0.01)  # first event of the spike segment


def test_schedule_rejects_nonsense():
    with pytest.raises(ValueError):
        Schedule([])
    with pytest.raises(ValueError):
        Schedule([Segment(1, -5)])


def test_sustained_rate_uses_the_middle_of_completion():
    # 1000 events done evenly over 10 s, plus a slow start and a straggler outside 10-90 %
    times = [1000 * 10 * i / 1000 for i in range(1000)]
    times[0] = -60_000
    times[-1] = 500_000
    assert sustained_rate(times, 1000) == pytest.approx(100, rel=0.02)
    assert math.isnan(sustained_rate([1, 2], 1000))


def test_profile_summary_from_collapsed_stacks():
    lines = [
        "<module> (streams/cli.py:3);_route (streams/worker/event_router.py:10);"
        "decode (streams/contracts/avro_codec.py:99) 3",
        "<module> (streams/cli.py:3);_route (streams/worker/event_router.py:10);"
        "route (streams/core/routing/router.py:70) 1",
        "<module> (streams/cli.py:3);_run_once (asyncio/base_events.py:1900) 4",
    ]
    summary = summarize_collapsed(lines)
    assert summary["samples"] == 8
    cats = dict(summary["self_by_category"])
    assert cats["asyncio event loop"] == 50.0
    assert cats["Avro encode/decode (fastavro, avro_codec, delivery_avro)"] == 37.5
    incl = dict(summary["inclusive_by_function"])
    assert incl["_route (streams/worker/event_router.py)"] == 50.0
    assert incl["<module> (streams/cli.py)"] == 100.0
    assert parse_frame("Pipeline._route (streams/app.py:171)") == ("Pipeline._route", "streams/app.py")
    assert category("faust/tables/base.py") == "Faust tables/changelog"


def test_workload_is_deterministic_and_duplicates_repeat_an_event():
    spec = WorkloadSpec(users=50, duplicate_share=0.2, seed=7)

    def encode(e):
        return e.event_id.encode()

    a = EventStream(spec).phase("p", 500, encode)
    b = EventStream(spec).phase("p", 500, encode)
    assert a == b
    keys, values, ids = a
    assert len(ids) == 500
    repeated = len(ids) - len(set(ids))
    assert 50 < repeated < 150  # about 20 %
    assert all(i.startswith("p:") for i in ids)


def test_digest_share_rescales_the_mix():
    mix = WorkloadSpec(digest_share=0.8).effective_category_mix()
    assert mix["social.like"] + mix["social.follow"] == pytest.approx(0.8)
    assert sum(mix.values()) == pytest.approx(1.0)
    assert parse_mix("a=1, b=3") == {"a": 1.0, "b": 3.0}
    with pytest.raises(ValueError):
        parse_mix("a")


def _burst(kind: str, rate: float):
    from bench.runner import PhaseResult

    return PhaseResult(f"{kind}-{rate}", kind, 1000, None, 1.0, rate, rate, 1000, {}, 1.0, 0, 0, 0, 0,
                       True, [], 0)


def test_the_tables_use_the_median_burst_and_of_two_the_slower():
    from bench.runner import SystemRun

    run = SystemRun("notipipe", "worker", 1, "p.")
    run.phases = [_burst("warmup", 99_999.0), _burst("max", 4000.0), _burst("max_repeat", 5000.0),
                  _burst("rate", 1.0), _burst("max_repeat", 3000.0)]
    assert run.max_rate == 4000.0
    assert [p.events_per_s for p in run.max_bursts()] == [4000.0, 5000.0, 3000.0]
    run.phases = [_burst("max", 4000.0), _burst("max_repeat", math.nan), _burst("max_repeat", 3000.0)]
    assert run.max_rate == 3000.0  # a burst without a rate does not count
    run.phases = []
    assert math.isnan(run.max_rate) and run.median_burst() is None


def test_latency_by_window_shows_which_second_a_stall_hit() -> None:
    start = 1_000_000.0
    # Steady 10 ms latency for three seconds, one 250 ms stall in the second one.
    samples = [(start + t, 10.0) for t in range(0, 3000, 50)] + [(start + 1500, 250.0)]
    windows = latency_by_window(samples, start)
    assert [w["start_s"] for w in windows] == [0.0, 1.0, 2.0]
    assert [w["max"] for w in windows] == [10.0, 250.0, 10.0]
    assert [w["count"] for w in windows] == [20, 21, 20]
    assert latency_by_window([], start) == []


def test_write_bytes_is_read_from_proc_io_text() -> None:
    text = ("rchar: 4096\nwchar: 71009238\nsyscr: 10\nsyscw: 20\nread_bytes: 0\n"
            "write_bytes: 67420160\ncancelled_write_bytes: 6258688\n")
    assert parse_write_bytes(text) == 67420160
    assert parse_write_bytes("rchar: 1\n") == 0


def test_a_process_that_has_gone_has_written_nothing() -> None:
    assert proc_disk_write_bytes(2**22 + 12345) == 0  # above any pid Linux hands out (2**22)
