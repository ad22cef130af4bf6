"""The guard of the framework extensions: it fails, naming the internal, when faust-streaming,
aiokafka or mode is not the version the extensions were written against, when a name they use is
gone, or when the source of a function they override, mirror or rely on has changed."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import pytest

from streams.faust_ext.internals import (
    INTERNALS,
    PINNED_VERSIONS,
    Internal,
    source_sha,
    version_problems,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_pinned_versions_are_installed_and_pinned_in_pyproject() -> None:
    assert version_problems() == []
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for package, pinned in PINNED_VERSIONS.items():
        assert f"{package}=={pinned}" in dependencies, f"pyproject.toml must pin {package}=={pinned}"
    lock = (ROOT / "requirements.lock").read_text()
    for package, pinned in PINNED_VERSIONS.items():
        assert re.search(rf"^{re.escape(package)}=={re.escape(pinned)} ", lock, re.M), (
            f"requirements.lock must lock {package}=={pinned}")


@pytest.mark.parametrize("internal", INTERNALS, ids=lambda i: i.name)
def test_each_internal_is_where_and_as_the_extension_expects(internal: Internal) -> None:
    try:
        obj = internal.resolve()
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{internal.name} is gone ({exc}): streams/faust_ext/{internal.used_by} relies "
                    f"on it: {internal.why}")
    if internal.source_sha is not None:
        found = source_sha(obj)
        assert found == internal.source_sha, (
            f"{internal.name} changed (source {found}, written against {internal.source_sha}): "
            f"streams/faust_ext/{internal.used_by} relies on it: {internal.why}. Read the new code, "
            "adapt the extension, then update the hash in streams/faust_ext/internals.py.")
    if internal.mentions:
        source = inspect.getsource(obj)
        missing = [m for m in internal.mentions if m not in source]
        assert not missing, (f"{internal.name} no longer contains {missing}: "
                             f"streams/faust_ext/{internal.used_by} relies on it: {internal.why}")


def test_private_framework_names_appear_only_in_the_extensions_package() -> None:
    private = {part for internal in INTERNALS for part in internal.qualname.split(".")
               if part.startswith("_") and not part.startswith("__")}
    private |= {"_fetch_min_bytes", "_fetch_max_wait_ms", "_read_offset", "_commit_every",
                "_n_acked", "_stopped"}
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, private))) + r")\b")
    offenders = []
    sources = [p for top in ("streams", "stack", "bench") for p in (ROOT / top).rglob("*.py")]
    for path in sorted(sources):
        relative = path.relative_to(ROOT)
        if relative.parts[:2] == ("streams", "faust_ext"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == [], "framework internals used outside streams/faust_ext/:\n" + "\n".join(offenders)


def test_every_extension_module_says_what_it_replaces() -> None:
    for module in sorted((ROOT / "streams" / "faust_ext").glob("*.py")):
        if module.name in {"__init__.py", "internals.py", "transport.py"}:
            continue
        doc = module.read_text().split('"""')[1]
        assert re.search(r"\b(Replaces|Wraps|Mirrors|Relies on):", doc), (
            f"{module.name}: its docstring must name the framework internal it replaces and why")


def test_a_worker_refuses_to_start_on_a_framework_it_was_not_written_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.faust_ext import internals

    internals.verify_installed()  # the pinned versions: starts
    monkeypatch.setitem(internals.PINNED_VERSIONS, "aiokafka", "0.0.1")
    with pytest.raises(internals.IncompatibleFramework, match="aiokafka 0.14.0 is installed"):
        internals.verify_installed()
