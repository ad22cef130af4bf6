"""Pipeline counters: every drop, hold, fold, delivery and DLQ write, by reason.

The router returns counters keyed by tuples such as ('dropped', 'expired') or
('delivered', 'email', 'digest'); they are summed here and rendered for Prometheus.
"""

from __future__ import annotations

from collections import Counter

# Label names for each counter family; the tuple's tail fills them in order.
_LABELS = {
    "dropped": ("reason",),
    "held": ("reason",),
    "folded": ("reason",),
    "postponed": ("reason",),
    "replayed": ("reason",),
    "delivered": ("channel", "kind"),
    "dlq": ("reason",),
    "events": ("outcome",),
    "preferences": ("outcome",),
}


class PipelineMetrics:
    def __init__(self) -> None:
        self.counters: Counter = Counter()

    def add(self, counters: Counter) -> None:
        self.counters.update(counters)

    def inc(self, *key: str, by: int = 1) -> None:
        self.counters[key] += by

    def as_dict(self) -> dict[str, int]:
        return {".".join(key): value for key, value in sorted(self.counters.items())}

    def prometheus(self) -> str:
        lines: list[str] = []
        families: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for key, value in self.counters.items():
            families.setdefault(key[0], []).append((key[1:], value))
        for family, rows in sorted(families.items()):
            name = f"notipipe_{family}_total"
            lines.append(f"# TYPE {name} counter")
            labels = _LABELS.get(family, tuple(f"l{i}" for i in range(8)))
            for tail, value in sorted(rows):
                pairs = ",".join(f'{label}="{v}"' for label, v in zip(labels, tail, strict=False))
                lines.append(f"{name}{{{pairs}}} {value}" if pairs else f"{name} {value}")
        return "\n".join(lines) + "\n"


def prometheus_gauges(gauges: dict[str, float]) -> str:
    """Point-in-time values (memory in use, cache sizes) as ``notipipe_<name>`` gauges."""
    lines: list[str] = []
    for name, value in sorted(gauges.items()):
        lines.append(f"# TYPE notipipe_{name} gauge")
        lines.append(f"notipipe_{name} {value!r}" if isinstance(value, float) and not value.is_integer()
                     else f"notipipe_{name} {int(value)}")
    return "\n".join(lines) + "\n"
