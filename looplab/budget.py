"""The run's spending limit (--budget-usd), over every model call: proposals, repairs, reflections, judges."""

from __future__ import annotations

from looplab.stopping import StopReason
from looplab.store import Store


def reserved(store: Store, budget_usd: float | None, in_flight: int) -> bool:
    """True when the attempts in flight are expected to use what is left of the budget.

    Until one attempt's price is known, attempts under a budget run one at a time.
    """
    if budget_usd is None or in_flight == 0:
        return False
    spent, per_attempt = store.usage_total().cost_usd, store.mean_attempt_cost()
    if spent is None or per_attempt is None:
        return True
    return spent + in_flight * per_attempt >= budget_usd


def stop(store: Store, budget_usd: float | None) -> tuple[StopReason, str]:
    """(why, one line) when the budget is spent or cannot be enforced; (LOOP_DONE, "") otherwise."""
    if budget_usd is None:
        return StopReason.LOOP_DONE, ""
    spent = store.usage_total().cost_usd
    if spent is None:
        return StopReason.BUDGET_UNKNOWN, (f"--budget-usd {budget_usd} cannot be enforced: the model's "
                                           "price is unknown (fix: give it with --price IN/OUT, USD per million "
                                           "tokens)")
    if spent >= budget_usd:
        return StopReason.BUDGET, f"budget reached: ${spent:.4f} of ${budget_usd:.2f} spent"
    return StopReason.LOOP_DONE, ""
