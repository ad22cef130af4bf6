"""docs/configuration.md is generated from the settings classes and must match them."""

from pathlib import Path

from streams.core.config import markdown
from streams.settings_cli import sections

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_configuration_reference_is_current() -> None:
    assert DOC.read_text() == markdown(sections()), (
        "docs/configuration.md is stale: regenerate it with "
        "`notipipe settings --markdown > docs/configuration.md`")


def test_every_setting_is_documented_with_a_meaning() -> None:
    from streams.core.config import variables

    for _, _, cls in sections():
        for var in variables(cls):
            assert var.name.startswith("NOTIPIPE_") and var.doc.strip(), var
