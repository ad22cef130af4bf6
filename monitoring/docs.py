"""The generated parts of docs/operations.md: the table of monitoring settings and the table of
alerts, both from their one definition. `python -m monitoring.docs` rewrites them in place; a unit
test fails when the committed page is stale."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from monitoring.alerts import ALERTS
from monitoring.settings import documented

PAGE = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default(value: object) -> str:
    return f"`{_cell(str(value))}`" if value != "" else "empty"


def settings_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for var in documented():
        rows.append(f"| `{var.name}` | {_cell(var.shown_default)} | {_cell(var.doc)} |")
    return "\n".join(rows)


def alerts_table() -> str:
    rows = ["| Alert | Severity | Meaning | Settings |", "|---|---|---|---|"]
    for a in ALERTS:
        settings = ", ".join(f"`{name}`" for name in a.settings)
        rows.append(f"| [{a.name}](#{a.anchor}) | {a.severity} | {a.description} | {settings} |")
    return "\n".join(rows)


def render(page: str) -> str:
    for name, table in (("settings", settings_table()), ("alerts", alerts_table())):
        start, end = f"<!-- generated:{name} -->", f"<!-- end:{name} -->"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
        if not pattern.search(page):
            raise ValueError(f"{PAGE} lacks the markers {start} ... {end}")
        page = pattern.sub(lambda _, s=start, e=end, t=table: f"{s}\n{t}\n{e}", page)
    return page


def main() -> int:
    PAGE.write_text(render(PAGE.read_text()))
    print(f"rewrote the generated tables of {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
