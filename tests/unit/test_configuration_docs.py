"""docs/configuration.md is generated from the settings classes and must match them."""

from pathlib import Path

from streams.core.config import markdown, variables
from streams.settings_cli import sections

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_configuration_reference_is_current() -> None:
    assert DOC.read_text() == markdown(sections()), (
        "docs/configuration.md is stale: regenerate it with "
        "`notipipe settings --markdown > docs/configuration.md`")


def test_every_setting_is_documented_with_a_meaning() -> None:
    for _, _, declared in sections():
        for var in (variables(declared) if isinstance(declared, type) else declared):
            assert var.name.startswith("NOTIPIPE_") and var.doc.strip(), var


def test_every_credential_variable_a_client_reads_is_documented() -> None:
    import re

    from streams.connection.variables import CREDENTIALS

    root = DOC.parents[1]
    sources = "\n".join(p.read_text() for p in (root / "streams" / "connection").glob("*.py")
                        if p.name != "variables.py")
    used = set(re.findall(r"NOTIPIPE_[A-Z_]+[A-Z]\b(?!_)", sources)) - {"NOTIPIPE_KAFKA"}  # a prefix
    declared = {var.name for var in CREDENTIALS}
    documented = declared | {var.name for _, _, cls in sections() if isinstance(cls, type)
                             for var in variables(cls)}
    assert used - documented == set(), "declare them in streams/connection/variables.py"
