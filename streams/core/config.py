"""Settings from ``NOTIPIPE_*`` environment variables, each declared once.

A settings class is a frozen dataclass whose fields say, with `env(...)`, which variable sets them,
their default and what they mean. `load` reads them, failing with a `ConfigError` that names the
variable, the value and what is expected; `docs/configuration.md` is rendered from the same
declarations (`notipipe settings --markdown`), so the documented defaults are the real ones.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

PREFIX = "NOTIPIPE_"
T = TypeVar("T")


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable, the value and what is expected."""

    def __init__(self, variable: str, value: str, expected: str) -> None:
        self.variable = variable
        self.value = value
        self.expected = expected
        super().__init__(f"{variable}={value!r} is invalid: expected {expected}")


class Invalid(ValueError):
    """Raised by a parser: the text is not what the setting expects (said in the message)."""


@dataclass(frozen=True)
class Parser:
    """Turns a variable's text into a value. ``empty`` is the value of an empty variable, or
    None when empty means "use the default"."""

    parse: Callable[[str], Any]
    expected: str
    empty: Any = None


@dataclass(frozen=True)
class Var:
    name: str
    doc: str
    parser: Parser
    shown_default: str


def env(name: str, default: Any, doc: str, parser: Parser, *, shown: str | None = None) -> Any:
    """A field set by ``NOTIPIPE_<name>``; ``shown`` is the default as the docs show it."""
    var = Var(PREFIX + name, doc, parser, shown if shown is not None else _show(default))
    if isinstance(default, dict):  # a mutable default: each instance gets its own copy
        return field(default_factory=default.copy, metadata={"env": var})
    return field(default=default, metadata={"env": var})


def family(name: str, keys: Iterable[str], doc: str, parser: Parser) -> Any:
    """A mapping field set by ``NOTIPIPE_<name>_<KEY>`` variables, one per key."""
    var = Var(f"{PREFIX}{name}_<KEY>", f"{doc} (KEY: {', '.join(k.upper() for k in keys)})", parser,
              "unset")
    return field(default_factory=dict, metadata={"family": (PREFIX + name + "_", tuple(keys), var)})


def load(cls: type[T], environ: Mapping[str, str]) -> T:
    """An instance of the settings class ``cls`` from ``environ``.

    A class may define ``resolve(values, environ) -> values`` for settings that depend on each
    other; it sees only the values that were set."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if "env" in f.metadata:
            var: Var = f.metadata["env"]
            raw = environ.get(var.name)
            if raw is not None and (raw.strip() or var.parser.empty is not None):
                values[f.name] = _parse(var.name, raw, var.parser)
        elif "family" in f.metadata:
            prefix, keys, var = f.metadata["family"]
            found = {key: _parse(prefix + key.upper(), environ[prefix + key.upper()], var.parser)
                     for key in keys if environ.get(prefix + key.upper(), "").strip()}
            if found:
                values[f.name] = found
    resolve = getattr(cls, "resolve", None)
    if resolve is not None:
        values = resolve(values, environ)
    return cls(**values)


def variables(cls: type) -> list[Var]:
    """The variables a settings class reads, in declaration order."""
    found = []
    for f in dataclasses.fields(cls):
        if "env" in f.metadata:
            found.append(f.metadata["env"])
        elif "family" in f.metadata:
            found.append(f.metadata["family"][2])
    return found


def markdown(sections: Iterable[tuple[str, str, type | Iterable[Var]]]) -> str:
    """The configuration reference: (title, what reads them, a settings class or its variables)
    per section."""
    lines = ["# Configuration", "",
             "Every setting is an environment variable. This page is generated from the settings "
             "classes (`notipipe settings --markdown > docs/configuration.md`); a unit test fails "
             "when it is stale. `notipipe settings` prints the values in effect.", ""]
    listed: set[str] = set()
    for title, readers, declared in sections:
        rows, again = [], []
        for var in (variables(declared) if isinstance(declared, type) else declared):
            if var.name in listed:
                again.append(f"`{var.name}`")
            else:
                listed.add(var.name)
                rows.append(f"| `{var.name}` | {var.shown_default} | {var.doc} |")
        where = (f" (`{declared.__module__}.{declared.__qualname__}`)" if isinstance(declared, type)
                 else "")
        lines += [f"## {title}", "", f"Read by {readers}{where}.", ""]
        if rows:
            lines += ["| Variable | Default | Meaning |", "|---|---|---|", *rows, ""]
        if again:
            lines += [f"Also read here, as above: {', '.join(again)}.", ""]
    return "\n".join(lines)


def _parse(name: str, raw: str, parser: Parser) -> Any:
    if not raw.strip() and parser.empty is not None:
        return parser.empty
    try:
        return parser.parse(raw.strip())
    except Invalid as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise ConfigError(name, raw, parser.expected + detail) from None
    except ValueError:
        raise ConfigError(name, raw, parser.expected) from None


def _show(default: Any) -> str:
    if default is None or default == "":
        return "unset"
    if isinstance(default, frozenset | set | tuple | list):
        return "`" + ",".join(sorted(str(v) for v in default)) + "`" if default else "empty"
    if isinstance(default, Path):
        return f"`{default.name}`"
    return f"`{default}`"


# -- parsers -------------------------------------------------------------------------------------
def whole(low: int, high: int) -> Parser:
    def parse(text: str) -> int:
        value = float(text)
        if not (value.is_integer() and low <= value <= high):
            raise ValueError(text)
        return int(value)
    return Parser(parse, f"a whole number between {low:g} and {high:g}")


def at_least(minimum: int) -> Parser:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(text)
        return value
    return Parser(parse, f"an integer >= {minimum}")


def number(low: float, high: float, unit: str = "a number") -> Parser:
    def parse(text: str) -> float:
        value = float(text)
        if not low <= value <= high:
            raise ValueError(text)
        return value
    return Parser(parse, f"{unit} between {low:g} and {high:g}")


def seconds_as_ms() -> Parser:
    """Seconds (fractions allowed, so tests can use sub-second windows), kept as milliseconds."""
    def parse(text: str) -> int:
        seconds = float(text)
        if not (math.isfinite(seconds) and round(seconds * 1000) > 0):
            raise ValueError(text)
        return round(seconds * 1000)
    return Parser(parse, "a positive number of seconds (at least 0.001), e.g. 900 or 0.5")


def names() -> Parser:
    """A comma-separated list of names; an empty variable is an empty list."""
    return Parser(lambda text: frozenset(p.strip() for p in text.split(",") if p.strip()),
                  "a comma-separated list of names", empty=frozenset())


def choice(*options: str) -> Parser:
    def parse(text: str) -> str:
        if text.lower() not in options:
            raise ValueError(text)
        return text.lower()
    return Parser(parse, " or ".join(options))


def flag() -> Parser:
    def parse(text: str) -> bool:
        value = text.lower()
        if value not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(text)
        return value in ("1", "true", "yes", "on")
    return Parser(parse, "1 or 0 (true or false)")


def text() -> Parser:
    return Parser(str, "text")


def path() -> Parser:
    return Parser(lambda text: Path(text).expanduser(), "a file system path")
