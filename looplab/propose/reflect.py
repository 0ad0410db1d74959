"""--reflect-every N: the model reads recent attempts and rewrites the memory's short "insights"."""

from __future__ import annotations

import time

from looplab.config import Experiment
from looplab.models.base import ModelError, ModelProvider, RepliesExhausted
from looplab.propose.prompt import goal_words
from looplab.records import Message, Usage
from looplab.store import Store

RECENT = 20
INSTRUCTION = (
    "Below are the latest attempts of a search for a {goal} implementation{note}, newest first, with the "
    "evaluator's verdict. Write at most 8 short bullet points of insight that will help the next attempts: "
    "which techniques pay off, which mistakes keep recurring, what is worth trying next. Bullets only."
)


async def reflect(experiment: Experiment, store: Store, provider: ModelProvider, *, timeout_s: float) -> bool:
    """One reflection call; its usage is recorded like any call. Returns whether insights were updated."""
    if provider.name.startswith("replay:"):
        return False  # replies in a replay file belong to attempts
    lines = []
    for row in store.attempts(limit=RECENT, newest_first=True):
        if row.outcome is None:
            continue
        speed = f" x{row.speedup:.2f}" if row.speedup else ""
        lines.append(f"- #{row.id} {row.outcome.value}{speed}: {row.strategy or '(no strategy)'} — {row.reason[:200]}")
    if not lines:
        return False
    previous = store.get_meta("insights") or "(none yet)"
    goal, note = goal_words(experiment)  # a score or a judged output is "better", not "faster"
    prompt = f"{INSTRUCTION.format(goal=goal, note=note)}\n\nPrevious insights:\n{previous}\n\nAttempts:\n" + "\n".join(lines)
    started = time.monotonic()
    try:
        reply = await provider.complete([Message("user", experiment.hide_holdout(prompt))], timeout_s=timeout_s)
    except (ModelError, RepliesExhausted) as e:
        store.record_call(attempt_id=None, model=provider.name, kind="reflect", usage=Usage(),
                          latency_s=time.monotonic() - started, error=str(e) or "no reply")
        return False
    store.record_call(attempt_id=None, model=reply.model, kind="reflect", usage=reply.usage,
                      latency_s=reply.latency_s, response=reply.text)
    store.set_meta("insights", experiment.hide_holdout(reply.text.strip())[:2000])
    return True
