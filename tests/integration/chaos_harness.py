"""The verifier as the suite runs it (chaos/): a pipeline of a module's own on a given stack, and
a scenario's short variant at a modest rate, its report printed and its verdict asserted."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

from chaos.pipeline import ChaosPipeline
from chaos.report import lines
from chaos.scenarios import SCENARIOS
from chaos.verifier import Outcome, Verifier
from stack.settings import StackSettings
from tests.integration.pipeline import free_port

RATE = 100.0  # events per second: modest, the machine is shared
USERS = 150


@contextlib.contextmanager
def chaos_verifier(stack: StackSettings, work_dir: Path) -> Iterator[Verifier]:
    pipeline = ChaosPipeline(stack, uuid.uuid4().hex[:6], work_dir, free_port)
    try:
        pipeline.setup()
        yield Verifier(pipeline)
    finally:
        pipeline.teardown()


def run_scenario(verifier: Verifier, name: str) -> Outcome:
    outcome = verifier.run(SCENARIOS[name], RATE, short=True, users=USERS)
    report = "\n".join(lines(outcome, SCENARIOS[name].title))
    print(report)
    assert outcome.ok, report
    return outcome
