"""Repair turns and duplicates that teach: what the model is told when its candidate failed.

A candidate that fails to extract, pass the screen, build or validate goes back to the model in the
same conversation (its reply, then the failure: secrets scrubbed, holdout names hidden, capped), up to
`repair_turns` times. The attempt's outcome is its last turn's. Every turn is kept in runs/<id>/
(turn 1: prompt.md, response.md, candidate.<ext>; turn n: repair-n.md, response-n.md, candidate-n.<ext>)
and listed in the attempt's details["turns"], from which memory learns each repaired failure too.

A duplicate is not repaired: the next ask says which attempt was repeated and what it scored, and is
sampled a little hotter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looplab.config import Experiment
from looplab.models.base import ModelError
from looplab.propose.extract import source_hash
from looplab.propose.memory import first_error_line
from looplab.propose.reply_grammar import reply_shape
from looplab.records import Candidate, Message, Outcome, Reply, Usage
from looplab.report import runs
from looplab.scrub import scrub_secrets
from looplab.store import AttemptRow, Store

if TYPE_CHECKING:
    from looplab.loop import Search

REPAIRABLE = frozenset({Outcome.EXTRACT_ERROR, Outcome.SCREEN_REJECTED, Outcome.COMPILE_ERROR, Outcome.INVALID,
                        Outcome.CRASH, Outcome.TIMEOUT})
FAILURE_CHARS = 1500  # what one repair ask shows of the failure
LOG_LINES = 12  # compiler diagnostics shown beside the reason
REPLY_CHARS = 8000  # the failed reply as the conversation repeats it (a rambling reply is cut)
TURN_REASON_CHARS = 400  # one turn's reason in details["turns"]
DEFAULT_TEMPERATURE = 0.8  # where a duplicate's follow-up starts when the run set no temperature
TEMPERATURE_STEP = 0.15  # per duplicate in a row
MAX_TEMPERATURE = 1.0  # every provider accepts it (Anthropic's ceiling)

_FAILED = {
    Outcome.EXTRACT_ERROR: "could not be read from your reply",
    Outcome.SCREEN_REJECTED: "was refused by the static screen before building",
    Outcome.COMPILE_ERROR: "did not compile",
    Outcome.INVALID: "built, but gave wrong results",
    Outcome.CRASH: "built, but crashed",
    Outcome.TIMEOUT: "timed out",
}


def turns_allowed(experiment: Experiment, override: int | None) -> int:
    """Repair turns per attempt: --repair-turns, else [search] repair_turns."""
    return experiment.config.search.repair_turns if override is None else max(0, override)


def failure_text(experiment: Experiment, reason: str, log: str = "") -> str:
    """The failure as the model reads it: the reason, the compiler's error lines, no secret, no holdout name."""
    lines = [reason.strip()]
    errors = [ln for ln in log.splitlines() if ln.strip() and ("error" in ln or "note:" in ln or "^" in ln)]
    extra = [ln for ln in errors[:LOG_LINES] if ln.strip() not in reason]
    if extra:
        lines += ["", "Compiler output:", *extra]
    text = experiment.hide_holdout(scrub_secrets("\n".join(lines)))
    return text if len(text) <= FAILURE_CHARS else text[:FAILURE_CHARS - 1] + "…"


def repair_ask(experiment: Experiment, outcome: Outcome, failure: str, turn: int, limit: int) -> Message:
    """The user message of repair turn `turn` (2 = the first repair)."""
    what = _FAILED.get(outcome, f"failed ({outcome.value})")
    shape = "each changed file's path line and its complete code block" if experiment.is_files else \
        "one complete code block"
    return Message("user", f"That candidate {what} ({outcome.value}):\n\n{failure}\n\n"
                           f"Fix exactly this problem and reply again in the same shape: Strategy line, Tags line, "
                           f"{shape}. (Repair {turn - 1} of {limit}.)")


@dataclass
class Turn:
    number: int
    reply: Reply
    candidate: Candidate | None
    outcome: Outcome
    reason: str
    log: str = ""
    hash: str = ""
    unchanged: bool = False  # the same program as an earlier turn (small models copy their last reply)


@dataclass
class Turns:
    """One attempt's conversation and its turns: what was asked, answered and decided each time."""

    experiment: Experiment
    run_dir: Path
    messages: list[Message]  # the conversation so far (the next call sends all of it)
    limit: int  # repair turns allowed after the first
    incumbent: str = ""  # what the candidate is built on (the reply grammar keeps its definition line)
    done: list[Turn] = field(default_factory=list)

    @property
    def next_number(self) -> int:
        return len(self.done) + 1

    def record(self, reply: Reply, candidate: Candidate | None, outcome: Outcome, reason: str, log: str = "") -> Turn:
        n = self.next_number
        runs.write(self.run_dir, _name("response", n, "md"), reply.text)
        if candidate is not None:
            runs.write(self.run_dir, _name("candidate", n, self.experiment.ext), candidate.source)
        digest = source_hash(candidate.source, self.experiment.language) if candidate is not None else ""
        turn = Turn(n, reply, candidate, outcome, reason, log, digest,
                    unchanged=bool(digest) and any(t.hash == digest for t in self.done))
        self.done.append(turn)
        return turn

    def earlier_same(self, candidate: Candidate) -> Turn | None:
        """An earlier turn of this attempt with the same program: its verdict stands, no need to judge again."""
        digest = source_hash(candidate.source, self.experiment.language)
        return next((t for t in self.done if t.hash == digest), None)

    def temperature(self, base: float | None) -> float | None:
        """A repair turn after one that sent the failing program back unchanged is sampled hotter."""
        copies = sum(t.unchanged for t in self.done)
        return hotter(base, copies) if copies else base  # untouched otherwise: a provider's own default stays

    def wants_repair(self) -> bool:
        last = self.done[-1]
        return last.outcome in REPAIRABLE and len(self.done) <= self.limit

    def ask_again(self) -> None:
        """Append the failed reply and the repair ask to the conversation (and write the ask to runs/)."""
        last = self.done[-1]
        text = last.reply.text
        if len(text) > REPLY_CHARS:
            text = text[:REPLY_CHARS] + f"\n[… {len(text) - REPLY_CHARS} more characters cut]"
        ask = repair_ask(self.experiment, last.outcome, failure_text(self.experiment, last.reason, last.log),
                         last.number + 1, self.limit)
        self.messages = [*self.messages, Message("assistant", text), ask]
        runs.write(self.run_dir, _name("repair", last.number + 1, "md"), ask.content)

    def details(self) -> list[dict[str, Any]]:
        """details["turns"]: each turn's outcome and (capped, holdout-free) reason, oldest first."""
        return [{"turn": t.number, "outcome": t.outcome.value,
                 "reason": self.experiment.hide_holdout(t.reason)[:TURN_REASON_CHARS],
                 "strategy": t.candidate.strategy if t.candidate else ""} for t in self.done]


def _name(stem: str, turn: int, ext: str) -> str:
    return f"{stem}.{ext}" if turn == 1 else f"{stem}-{turn}.{ext}"


def turn_files(turn: int, ext: str) -> list[tuple[str, str]]:
    """(file name in runs/<id>/, what it holds) of one turn, for the report."""
    ask = ("prompt.md", "Prompt") if turn == 1 else (_name("repair", turn, "md"), f"Repair ask {turn - 1}")
    title = "" if turn == 1 else f" (turn {turn})"
    return [ask, (_name("response", turn, "md"), f"Reply{title}"), (_name("candidate", turn, ext), f"Candidate{title}")]


async def propose(s: Search, attempt_id: int, turns: Turns, temperature: float | None) -> Reply:
    """One model call of the conversation, its usage recorded whether or not it is usable."""
    kind = "propose" if not turns.done else "repair"
    shape = {"shape": reply_shape(s.experiment, turns.incumbent)} if getattr(s.provider, "takes_shape", False) else {}
    started = time.monotonic()
    try:
        reply = await s.provider.complete(turns.messages, temperature=turns.temperature(temperature),
                                          max_tokens=s.options.max_tokens,
                                          timeout_s=s.options.model_timeout_s, **shape)
    except ModelError as e:
        s.store.record_call(attempt_id=attempt_id, model=s.provider.name, kind=kind, usage=Usage(),
                            latency_s=time.monotonic() - started, error=str(e))
        raise
    s.store.record_call(attempt_id=attempt_id, model=reply.model, kind=kind, usage=reply.usage,
                        latency_s=reply.latency_s, response=reply.text)
    return reply


# ---------------------------------------------------------------- duplicates that teach


def after_duplicate(experiment: Experiment, store: Store, duplicate: AttemptRow, repeats: int,
                    temperature: float | None) -> tuple[str, float]:
    """(what the next ask says, its temperature) after `repeats` duplicates in a row, the latest `duplicate`."""
    earlier_id = duplicate.details.get("duplicate_of")
    earlier = store.attempt(earlier_id) if isinstance(earlier_id, int) else None
    warmer = hotter(temperature, repeats)
    if earlier is None:
        return ("Your previous reply repeated an earlier program; write a substantially different "
                "implementation.", warmer)
    said = f"Your previous reply repeated attempt {earlier.id} ({scored(earlier)}); that program is already " \
           "measured, so write a substantially different implementation."
    return experiment.hide_holdout(said), warmer


def hotter(temperature: float | None, steps: int) -> float:
    """The temperature `steps` steps up from the run's (or the default), never above MAX_TEMPERATURE nor
    below where it started."""
    base = DEFAULT_TEMPERATURE if temperature is None else temperature
    return max(base, min(MAX_TEMPERATURE, base + TEMPERATURE_STEP * steps))


def scored(row: AttemptRow) -> str:
    """What an attempt scored, in a few words the model can use."""
    if row.outcome is Outcome.BASELINE:
        return "the baseline, the starting point"
    what = row.outcome.value if row.outcome else "unfinished"
    if row.speedup is not None:
        ci = f" [{row.ci_low:.2f}, {row.ci_high:.2f}]" if row.ci_low is not None and row.ci_high is not None else ""
        what += f", x{row.speedup:.2f}{ci} against the best of its time"
    elif row.outcome is not None and row.outcome not in (Outcome.ACCEPTED, Outcome.SPECIALIST, Outcome.SLOWER):
        first = first_error_line(row.reason or "")
        what += f": {first[:160]}" if first else ""
    return what
