"""The mutation check's table (scripts/mutation_check.py) stays in step with the code: a snippet
that no longer occurs exactly once would make its mutant meaningless. The check itself runs as a
command (README, Tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():  # scripts/ is not a package
    spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "scripts" /
                                                  "mutation_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


mutation_check = _script()


def test_every_mutant_snippet_occurs_exactly_once_in_the_code() -> None:
    assert mutation_check.check_snippets(ROOT, mutation_check.MUTANTS) == []


def test_every_module_overriding_faust_internals_has_mutants() -> None:
    covered = {mutant.path for mutant in mutation_check.MUTANTS}
    extensions = {f"streams/faust_ext/{p.name}" for p in (ROOT / "streams" / "faust_ext").glob("*.py")
                  if p.name != "__init__.py"}
    wiring = {"streams/worker/app.py", "streams/worker/event_router.py",
              "streams/worker/delivery_producer.py"}
    assert covered >= extensions | wiring, sorted((extensions | wiring) - covered)


def test_a_stale_snippet_is_reported_and_refused(tmp_path: Path) -> None:
    (tmp_path / "module.py").write_text("x = 1\nx = 1\n")
    (tmp_path / "test_module.py").write_text("")
    twice = mutation_check.Mutant("twice", "module.py", "x = 1\n", "x = 2\n", "test_module.py")
    gone = mutation_check.Mutant("gone", "module.py", "y = 1\n", "y = 2\n", "test_module.py")
    problems = mutation_check.check_snippets(tmp_path, [twice, gone])
    assert problems == ["twice: its snippet occurs 2 times in module.py, not once: update the "
                        "mutant to the code",
                        "gone: its snippet occurs 0 times in module.py, not once: update the "
                        "mutant to the code"]
    with pytest.raises(SystemExit, match="stale mutant 'gone'"):
        mutation_check.apply(tmp_path, gone)


def test_validate_mode_exits_zero_on_the_current_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert mutation_check.main(["--validate"]) == 0
    assert "every snippet found once" in capsys.readouterr().out
