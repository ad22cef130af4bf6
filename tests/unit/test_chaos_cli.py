"""Which scenarios `notipipe chaos` runs on a cluster too small for the broker faults."""

from __future__ import annotations

import pytest

from chaos.brokers import TooFewBrokers
from chaos.cli import _runnable
from chaos.scenarios import SCENARIOS


class _Brokers:
    def __init__(self, enough: bool) -> None:
        self.enough, self.asked = enough, 0

    def require(self) -> None:
        self.asked += 1
        if not self.enough:
            raise TooFewBrokers("the broker scenarios need a cluster of 3 brokers")


class _Pipeline:
    def __init__(self, enough: bool) -> None:
        self.brokers = _Brokers(enough)


BROKER_FAULTS = [n for n, s in SCENARIOS.items() if s.brokers > 1]


def test_the_broker_faults_are_the_leader_kill_and_the_rolling_restart() -> None:
    assert BROKER_FAULTS == ["leader-kill", "broker-roll"]
    assert all(SCENARIOS[n].brokers == 3 for n in BROKER_FAULTS)


def test_all_skips_the_broker_faults_on_one_broker_and_says_why(capsys) -> None:
    names = _runnable(list(SCENARIOS), _Pipeline(enough=False), explicit=False)
    assert names == [n for n in SCENARIOS if n not in BROKER_FAULTS]
    assert "skipping leader-kill, broker-roll: the broker scenarios need" in capsys.readouterr().out


def test_a_broker_fault_named_on_one_broker_is_refused() -> None:
    with pytest.raises(TooFewBrokers):
        _runnable(["kill-worker", "leader-kill"], _Pipeline(enough=False), explicit=True)


def test_three_brokers_run_everything_and_one_broker_scenarios_ask_nothing() -> None:
    assert _runnable(list(SCENARIOS), _Pipeline(enough=True), explicit=False) == list(SCENARIOS)
    pipeline = _Pipeline(enough=False)
    assert _runnable(["spike"], pipeline, explicit=True) == ["spike"]
    assert pipeline.brokers.asked == 0
