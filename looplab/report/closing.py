"""The last lines of a run that found nothing better: what the user saw, plainly, and what to run next."""

from __future__ import annotations

from collections import Counter

from looplab.config import Experiment
from looplab.records import NEVER_RAN, RAN_AND_FAILED, Outcome
from looplab.store import open_store

SMALL_MODEL = "local:SmolLM2-135M-Instruct"


def closing_lines(experiment: Experiment, store_url: str | None, attempt_ids: list[int], model: str) -> list[str]:
    """Nothing when the run kept a winner (or ran no attempt); else two or three plain lines."""
    if not attempt_ids:
        return []
    store = open_store(experiment, store_url)
    try:
        rows = [r for r in (store.attempt(i) for i in attempt_ids) if r is not None and r.outcome is not None]
    finally:
        store.close()
    outcomes = Counter(r.outcome for r in rows)
    if not rows or outcomes[Outcome.ACCEPTED] or outcomes[Outcome.SPECIALIST]:
        return []
    repaired = sum(1 for r in rows if len(r.details.get("turns") or []) > 1)
    judged = sum(outcomes[o] for o in RAN_AND_FAILED)
    never = sum(outcomes[o] for o in NEVER_RAN)
    parts = [f"{judged} built and ran ({_counts(outcomes, RAN_AND_FAILED)})" if judged else "",
             f"{never} never ran ({_counts(outcomes, NEVER_RAN)})" if never else "",
             f"{outcomes[Outcome.DUPLICATE]} repeated an earlier program" if outcomes[Outcome.DUPLICATE] else ""]
    saw = f"what happened: {len(rows)} attempts, none better than the current best: " + \
        ", ".join(p for p in parts if p) + (f"; a repair turn was asked in {repaired} of them." if repaired else ".")
    lines = [saw]
    if model == SMALL_MODEL:
        lines.append("  you saw the loop working end to end (prompts, replies, builds, validation, repair turns, "
                     "memory); the built-in model has 135M parameters, too small to be expected to write a faster "
                     "correct program (docs/local-model.md has the measurements).")
    root = experiment.root
    lines.append(f"  next, a real search: looplab run {root} --model openai:gpt-4o-mini --loop 20 --budget-usd 2"
                 f"  (or --model local:PATH.gguf with a coder model, or --base-url of a local server); "
                 f"see runs/ and `looplab report {root}` for every attempt")
    return lines


def _counts(outcomes: Counter, which: tuple[Outcome, ...]) -> str:
    return ", ".join(f"{o.value} {outcomes[o]}" for o in which if outcomes[o]) or "none"
