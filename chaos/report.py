"""A scenario's outcome for people (and as JSON, for the figures in docs/reliability.md)."""

from __future__ import annotations

from typing import Any

from chaos.verifier import Outcome


def lines(outcome: Outcome, title: str, bound_s: float | None = None) -> list[str]:
    v = outcome.verdict
    out = [f"== {outcome.scenario}: {title}"]
    out += [f"   {note}" for note in outcome.notes]
    out.append(f"   offered     {outcome.offered:,} events in {outcome.load_s:.1f}s "
               f"({outcome.rate:,.0f}/s): {outcome.distinct:,} distinct, "
               f"{outcome.offered - outcome.distinct:,} repeated ids")
    out.append(f"   expected    {outcome.expected:,} arrivals (user, channel, event)")
    out.append("   delivered   " + " | ".join(f"{view.name} {view.arrived:,}/{view.expected:,}"
                                             for view in v.views))
    topics, gateway = v.view("topics"), v.view("gateway")
    out.append(f"   redelivered and absorbed: {topics.repeated:,} delivery ids written again on the "
               f"topics, {gateway.repeated:,} accepted again at the gateway "
               f"({outcome.observed.gateway_attempts:,} gateway requests in all)")
    out.append(f"   lost {v.lost}  doubled {v.doubled}  unexpected {v.unexpected}  "
               f"out of order {len(v.out_of_order)}  dead-lettered {v.dead_lettered}")
    if v.drained:
        out.append(f"   drained     lags zero and every arrival in {v.drain_s:.1f}s after the load"
                   + (f" (bound {bound_s:.0f}s)" if bound_s else ""))
    out += [f"   {'ok  ' if ok else 'FAIL'} {what}" for what, ok in outcome.checks]
    out += [f"   ! {problem}" for problem in v.problems()]
    out.append(f"   {'PASS' if outcome.ok else 'FAIL'}")
    return out


def summary(outcomes: list[Outcome]) -> list[str]:
    head = (f"{'scenario':<24} {'offered':>8} {'/s':>6} {'expected':>9} {'lost':>5} {'doubled':>7} "
            f"{'again(topic/gw)':>15} {'drain s':>8}  result")
    rows = [head, "-" * len(head)]
    for o in outcomes:
        v = o.verdict
        again = f"{v.view('topics').repeated}/{v.view('gateway').repeated}"
        drain = f"{v.drain_s:.1f}" if v.drain_s is not None else "-"
        rows.append(f"{o.scenario:<24} {o.offered:>8,} {o.rate:>6,.0f} {o.expected:>9,} {v.lost:>5} "
                    f"{v.doubled:>7} {again:>15} {drain:>8}  {'PASS' if o.ok else 'FAIL'}")
    return rows


def as_json(outcome: Outcome) -> dict[str, Any]:
    v = outcome.verdict
    return {
        "scenario": outcome.scenario, "ok": outcome.ok, "offered": outcome.offered,
        "distinct": outcome.distinct, "rate_per_s": round(outcome.rate, 1),
        "load_s": round(outcome.load_s, 1), "expected": outcome.expected,
        "views": {view.name: {"expected": view.expected, "arrived": view.arrived,
                              "lost": len(view.lost), "doubled": len(view.doubled),
                              "unexpected": len(view.unexpected), "repeated": view.repeated}
                  for view in v.views},
        "gateway_attempts": outcome.observed.gateway_attempts,
        "out_of_order": len(v.out_of_order), "dead_letters": v.dead_letters,
        "drained": v.drained, "drain_s": None if v.drain_s is None else round(v.drain_s, 1),
        "notes": outcome.notes, "checks": [{"what": w, "ok": ok} for w, ok in outcome.checks],
    }
