"""The judge model of a judged objective: it compares the incumbent's and the candidate's output for one
case and is built to be hard to fool.

- Both orders, every time: one call shows the incumbent's output first, the other the candidate's (which
  call goes first is drawn). A side wins only when both calls name it; a verdict that changes with the
  order is a tie.
- Blind: the judge reads the rubric, the case's input and "Output 1"/"Output 2" (judge_prompt.py),
  never which one is the candidate, any source or the case's name.
- Outputs that show the same are a tie without a call.
- Every call is recorded in the store (kind "judge", tokens, cost) when a loop is recording
  (recording()), and --budget-usd is checked before each comparison: past it, comparisons are left
  unjudged (ties, and no win can be confirmed), and under a budget comparisons run one at a time, so
  judging stops within one comparison's two calls of the budget.

The judge in use is installed by the CLI (--judge-model, else [judge] model), or built from
experiment.toml when none is (judge_for).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from looplab.acceptance import judge_prompt
from looplab.acceptance.judge_prompt import Answer
from looplab.config import Experiment, JudgeConfig, ObjectiveKind
from looplab.errors import UserError
from looplab.models.base import ModelAccessError, ModelError, ModelProvider
from looplab.records import Usage

if TYPE_CHECKING:
    from looplab.store import Store

KIND = "judge"  # calls.kind in the store
_CACHE = 4096  # answers kept: the same question is not paid for twice


class JudgeError(Exception):
    """A judge call failed after its retries: the machinery failed, not the candidate."""


@dataclass(frozen=True)
class Comparison:
    """One case's verdict. verdict: "win" / "loss" (the candidate's, in both orders), "tie" (both orders
    said tie), "flip" (each order named a different side), "split" (one order named a side, the other said
    tie), "unread" (a reply held no verdict), "same" (identical outputs, no call), "unjudged" (the budget
    was spent). Only wins and losses count; everything else is a tie."""

    case: str
    key: str  # what was compared (input and both outputs as shown): the same key is the same evidence
    verdict: str
    reasons: tuple[str, ...] = ()

    @property
    def decided(self) -> bool:
        return self.verdict in ("win", "loss")

    @property
    def called(self) -> bool:
        return self.verdict not in ("same", "unjudged")

    @property
    def order_dependent(self) -> bool:
        return self.verdict in ("flip", "split")


@dataclass
class Tally:
    """What this judge did since it was made: calls, their usage, and its verdicts by kind."""

    calls: int = 0
    failed_calls: int = 0
    unreadable: int = 0  # replies with no verdict in them (each counts as that order's tie)
    usage: Usage = field(default_factory=Usage)
    verdicts: dict[str, int] = field(default_factory=dict)


@dataclass
class CallSink:
    """Where a loop's judge calls go: the store (with the attempt they belong to) and the budget."""

    store: Store
    attempt_id: int | None
    budget_usd: float | None = None

    def record(self, model: str, usage: Usage, latency_s: float, *, error: str | None = None,
               response: str | None = None) -> None:
        self.store.record_call(attempt_id=self.attempt_id, model=model, kind=KIND, usage=usage,
                               latency_s=latency_s, error=error, response=response)

    def spent(self) -> bool:
        """The budget is used up, or cannot be told (an unknown price): no more calls."""
        if self.budget_usd is None:
            return False
        cost = self.store.usage_total().cost_usd
        return cost is None or cost >= self.budget_usd


_sink: contextvars.ContextVar[CallSink | None] = contextvars.ContextVar("judge_sink", default=None)
_installed: contextvars.ContextVar[PairJudge | None] = contextvars.ContextVar("pair_judge", default=None)


def recording(store: Store, attempt_id: int | None, budget_usd: float | None = None) -> None:
    """Judge calls made from here on (in this task) are recorded for `attempt_id`, within the budget."""
    _sink.set(CallSink(store, attempt_id, budget_usd))


def install(judge: PairJudge | None) -> None:
    """The judge judged rules use from here on (in this context and the tasks it starts)."""
    _installed.set(judge)


class PairJudge:
    def __init__(self, provider: ModelProvider, rubric: str, config: JudgeConfig | None = None):
        self.provider = provider
        self.rubric = rubric
        self.config = config or JudgeConfig()
        self.tally = Tally()
        self._answers: OrderedDict[str, Answer] = OrderedDict()

    @property
    def name(self) -> str:
        return self.provider.name

    async def compare(self, case: str, case_input: object, incumbent: object, candidate: object) -> Comparison:
        limit = self.config.max_output_chars
        inp = judge_prompt.shown(case_input, limit)
        inc, cand = judge_prompt.shown(incumbent, limit), judge_prompt.shown(candidate, limit)
        key = _digest(inp, inc, cand)
        if inc == cand:
            return self._count(Comparison(case, key, "same"))
        sink = _sink.get()
        if sink is not None and sink.spent():
            return self._count(Comparison(case, key, "unjudged"))
        # Incumbent shown first, and candidate shown first: "1"/"2" name different sides in each. Which of
        # the two is asked first is drawn too, so nothing about call order (a warm cache) can favour a side.
        asks = [self._ask(inp, inc, cand, sink), self._ask(inp, cand, inc, sink)]
        flipped = secrets.randbelow(2) == 1
        # Both calls land (and are recorded) before a failure of either is raised: none is left in flight.
        landed = await asyncio.gather(*(asks[::-1] if flipped else asks), return_exceptions=True)
        for failure in landed:
            if isinstance(failure, BaseException):
                raise failure
        first, second = landed[::-1] if flipped else landed
        sides = ({"1": "incumbent", "2": "candidate", "tie": "tie"}.get(first.better or ""),
                 {"1": "candidate", "2": "incumbent", "tie": "tie"}.get(second.better or ""))
        if sides[0] == sides[1] and sides[0] in ("candidate", "incumbent"):
            verdict = "win" if sides[0] == "candidate" else "loss"
        elif set(sides) == {"candidate", "incumbent"}:
            verdict = "flip"
        elif None in sides:
            verdict = "unread"
        elif {"candidate", "incumbent"} & set(sides):
            verdict = "split"
        else:
            verdict = "tie"
        return self._count(Comparison(case, key, verdict, (first.reason, second.reason)))

    async def compare_all(self, triples: list[tuple[str, object, object, object]]) -> list[Comparison]:
        """compare() for each (case, input, incumbent output, candidate output), a few at a time."""
        sink = _sink.get()
        # Under a budget one comparison at a time, so judging stops within one comparison's calls of it.
        budget = sink is not None and sink.budget_usd is not None
        limit = asyncio.Semaphore(1 if budget else self.config.concurrency)  # made here: bound to the running loop

        refused: list[ModelAccessError] = []

        async def one(t: tuple[str, object, object, object]) -> Comparison:
            async with limit:
                if refused:  # the key was refused: ask no more, but let the calls in flight land (recorded)
                    raise refused[0]
                try:
                    return await self.compare(*t)
                except ModelAccessError as e:
                    refused.append(e)
                    raise

        results = await asyncio.gather(*(one(t) for t in triples), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise refused[0] if refused else failed[0]
        return list(results)  # type: ignore[arg-type]

    def _count(self, c: Comparison) -> Comparison:
        self.tally.verdicts[c.verdict] = self.tally.verdicts.get(c.verdict, 0) + 1
        return c

    async def _ask(self, case_input: str, first: str, second: str, sink: CallSink | None) -> Answer:
        key = _digest(case_input, first, second)
        if key in self._answers:
            self._answers.move_to_end(key)
            return self._answers[key]
        messages = judge_prompt.messages(self.rubric, case_input, first, second)
        started = time.monotonic()
        # A local model decodes under the verdict's grammar, so a small one still answers in a readable shape.
        shaped = {"grammar": judge_prompt.GRAMMAR} if getattr(self.provider, "takes_shape", False) else {}
        try:
            reply = await self.provider.complete(messages, temperature=self.config.temperature,
                                                 max_tokens=self.config.max_tokens, timeout_s=self.config.timeout_s,
                                                 **shaped)
        except ModelError as e:
            self.tally.failed_calls += 1
            if sink is not None:
                sink.record(self.provider.name, Usage(), time.monotonic() - started, error=str(e))
            if isinstance(e, ModelAccessError):  # the judge's key is refused: no later comparison can succeed
                raise ModelAccessError(f"the judge model {self.provider.name}: {e}") from None
            raise JudgeError(f"{self.provider.name}: {e}") from None
        self.tally.calls += 1
        self.tally.usage = self.tally.usage + reply.usage
        if sink is not None:
            sink.record(reply.model, reply.usage, reply.latency_s, response=reply.text)
        answer = judge_prompt.parse(reply.text)
        self.tally.unreadable += answer.better is None
        self._answers[key] = answer
        if len(self._answers) > _CACHE:
            self._answers.popitem(last=False)
        return answer


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "replace") + b"\0\x01")
    return h.hexdigest()[:32]


def build(experiment: Experiment, *, model: str | None = None, base_url: str | None = None,
          price: str | None = None) -> PairJudge:
    """The judge a judged experiment names: flags first, then [judge] in experiment.toml."""
    from looplab.models import provider_from_spec
    from looplab.models.priced import PricedProvider
    from looplab.models.usage import parse_price

    cfg = experiment.config.judge
    spec = model or cfg.model
    if not spec:
        raise UserError(f"{experiment.root / 'experiment.toml'}: field 'judge.model': missing (fix: name the model "
                        "that compares outputs, e.g. [judge] model = \"openai:gpt-4o-mini\", or pass --judge-model)")
    provider = provider_from_spec(spec, base_url=base_url or cfg.base_url or None)
    if price or cfg.price:
        try:
            provider = PricedProvider(provider, parse_price(price or cfg.price))
        except UserError:
            raise UserError(f"judge price {(price or cfg.price)!r}: expected INPUT/OUTPUT[/CACHED] in USD per "
                            "million tokens (fix: e.g. --judge-price 0.15/0.60 or [judge] price = \"0.15/0.60\")"
                            ) from None
    rubric = (experiment.root / cfg.rubric).read_text()
    return PairJudge(provider, rubric, cfg)


def install_for(experiment: Experiment, *, model: str | None = None, base_url: str | None = None,
                price: str | None = None) -> PairJudge | None:
    """For a judged objective, install the judge the flags or [judge] name (the CLI's commands); else None."""
    if experiment.config.objective.kind is not ObjectiveKind.JUDGED:
        return None
    judge = build(experiment, model=model, base_url=base_url, price=price)
    install(judge)
    return judge


def judge_for(experiment: Experiment) -> PairJudge:
    """The installed judge, else one built from experiment.toml (and installed for what follows)."""
    judge = _installed.get()
    if judge is None:
        judge = build(experiment)
        _installed.set(judge)
    return judge
