"""The soak's memory summary: where RSS started, peaked and ended, and its growth per million
events over the second half of the soak (what a leak would show once the caches are full)."""

from bench.memory import MemorySample, summarize, timeline


def _sample(elapsed: float, rss: float, routed: int | None) -> MemorySample:
    return MemorySample(elapsed, rss, routed, 256.0, 40.0)


def test_summary_measures_growth_over_the_second_half_of_the_events():
    samples = [
        _sample(0, 400, 1_000_000),  # routed counts include the phases before the soak
        _sample(10, 500, 1_500_000),  # caches filling
        _sample(20, 600, 2_000_000),  # halfway through the soak's 2M events
        _sample(30, 605, 2_500_000),
        _sample(40, 610, 3_000_000),
    ]
    summary = summarize(samples)
    assert summary["rss_mb_first"] == 400
    assert summary["rss_mb_last"] == 610
    assert summary["rss_mb_peak"] == 610
    assert summary["second_half_events"] == 1_000_000
    assert summary["second_half_rss_mb"] == 10
    assert summary["second_half_mb_per_million_events"] == 10


def test_summary_skips_samples_the_worker_did_not_answer_and_keeps_the_peak():
    samples = [_sample(0, 300, 0), _sample(5, 700, None), _sample(10, 350, 1_000_000),
               _sample(15, 340, 2_000_000)]
    summary = summarize(samples)
    assert summary["rss_mb_peak"] == 700
    assert summary["second_half_events"] == 1_000_000  # from the sample at 1M, not the silent one
    assert summary["second_half_mb_per_million_events"] == -10


def test_summary_without_event_counts_still_reports_rss():
    summary = summarize([_sample(0, 300, None), _sample(5, 320, None)])
    assert summary == {"rss_mb_first": 300, "rss_mb_last": 320, "rss_mb_peak": 320}
    assert summarize([]) == {}


def test_timeline_spreads_rows_and_keeps_both_ends():
    samples = list(range(41))
    rows = timeline(samples, rows=5)
    assert rows == [0, 10, 20, 30, 40]
    assert timeline(samples[:3], rows=5) == [0, 1, 2]
