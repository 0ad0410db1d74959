"""The orchestrator. Read top to bottom: one attempt goes prompt → model → extract → novelty →
screen → judge (build, validate, measure, decide) → keep → record; run_search repeats it
within the budgets and resumes where the store left off.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Protocol

from looplab import archive, memory, report, runs
from looplab.evaluate import Evaluator
from looplab.experiment import Experiment, UserError
from looplab.extract import ExtractError, extract_candidate, next_ideas, normalize, source_hash
from looplab.judge import judge
from looplab.models.base import ModelError, ModelProvider, RepliesExhausted
from looplab.prompt import Failure, PromptContext, render_markdown, render_prompt
from looplab.records import Decision, Evaluation, Outcome, Usage
from looplab.screen import screen
from looplab.stats import aggregate_metric
from looplab.store import AttemptRow, Store

FAILURES = [Outcome.COMPILE_ERROR, Outcome.INVALID, Outcome.OVERFIT, Outcome.TIMEOUT, Outcome.CRASH,
            Outcome.SCREEN_REJECTED, Outcome.EXTRACT_ERROR, Outcome.SLOWER]


@dataclass
class RunOptions:
    loop: int
    temperature: float | None = None
    max_tokens: int | None = None
    budget_usd: float | None = None
    model_timeout_s: float = 600.0
    max_model_errors: int = 5  # consecutive provider failures before the run stops


class Progress(Protocol):
    """What the loop tells the person watching (terminal, logs, dashboard)."""

    def started(self, attempt_id: int, index: int, total: int) -> None: ...
    def finished(self, row: AttemptRow) -> None: ...
    def note(self, text: str) -> None: ...


@dataclass
class Assessment:
    """What the evaluator decided about one candidate source."""

    outcome: Outcome
    reason: str
    evaluation: Evaluation | None = None
    decision: Decision | None = None
    details: dict = field(default_factory=dict)


@dataclass
class RunSummary:
    attempts: list[int]
    stopped_because: str


# ---------------------------------------------------------------- one attempt


async def run_attempt(experiment: Experiment, store: Store, evaluator: Evaluator,
                      provider: ModelProvider, options: RunOptions, attempt_id: int) -> AttemptRow:
    incumbent = store.incumbent()
    assert incumbent is not None and incumbent.source is not None
    run_dir = runs.attempt_dir(experiment, attempt_id)

    # 1. Prompt: the task, the incumbent, the memory, the latest failures.
    messages = render_prompt(experiment, prompt_context(store, experiment, incumbent))
    runs.write(run_dir, "prompt.md", render_markdown(messages))

    # 2. Model: one reply, its usage recorded whether or not it is usable.
    started = time.monotonic()
    try:
        reply = await provider.complete(messages, temperature=options.temperature,
                                        max_tokens=options.max_tokens, timeout_s=options.model_timeout_s)
    except ModelError as e:
        store.record_call(attempt_id=attempt_id, model=provider.name, kind="propose", usage=Usage(),
                          latency_s=time.monotonic() - started, error=str(e))
        return finish(experiment, store, attempt_id, Assessment(Outcome.MODEL_ERROR, str(e)))
    store.record_call(attempt_id=attempt_id, model=reply.model, kind="propose", usage=reply.usage,
                      latency_s=reply.latency_s, response=reply.text)
    runs.write(run_dir, "response.md", reply.text)

    # 3. Extract exactly one candidate for the target.
    try:
        candidate = extract_candidate(reply.text, language=experiment.language, target=experiment.target,
                                      incumbent=incumbent.source,
                                      allow_helpers=experiment.config.screen.allow_helpers)
    except ExtractError as e:
        return finish(experiment, store, attempt_id, Assessment(Outcome.EXTRACT_ERROR, str(e)))
    runs.write(run_dir, f"candidate.{experiment.ext}", candidate.source)
    details = {"next_ideas": next_ideas(reply.text)}

    # 4-6. Novelty, screen, judge: the evaluator decides.
    assessment = await assess(experiment, store, evaluator, candidate.source, incumbent)
    assessment.details.update(details)

    # 7. Keep what is genuinely better: archive and commit.
    commit = None
    if assessment.outcome in (Outcome.ACCEPTED, Outcome.SPECIALIST):
        commit = archive.archive_winner(experiment, source=candidate.source, attempt_id=attempt_id,
                                        message=_commit_message(experiment, attempt_id, assessment,
                                                                candidate.strategy))
    return finish(experiment, store, attempt_id, assessment, source=candidate.source,
                  strategy=candidate.strategy, tags=candidate.tags, commit=commit)


async def assess(experiment: Experiment, store: Store, evaluator: Evaluator, source: str,
                 incumbent: AttemptRow, *, judge_duplicates: bool = False) -> Assessment:
    """Novelty → screen → judge for one candidate source (shared by `run` and `eval`)."""
    language = experiment.language
    earlier = _earlier_same(experiment, store, source, incumbent)
    if earlier is not None and not judge_duplicates:
        return Assessment(Outcome.DUPLICATE, f"same program as attempt {earlier} (after normalising "
                          "whitespace and comments)", details={"duplicate_of": earlier})
    verdict = screen(source, language=language, policy=experiment.config.screen)
    if verdict is not None:
        return Assessment(verdict.outcome, verdict.reason, details={"rule": verdict.rule})
    result = await judge(experiment, evaluator, candidate_source=source, incumbent_source=incumbent.source or "",
                         best_case_medians=best_case_medians(store, experiment))
    outcome = result.decision.outcome
    if earlier is not None:
        outcome = Outcome.DUPLICATE
    holdout = {}
    if result.holdout is not None:
        holdout = {"holdout_ok": result.holdout.ok, "holdout_speedup": result.decision.holdout_speedup,
                   "holdout_cases": {name: c.to_dict() for name, c in result.holdout.cases.items()}}
    return Assessment(outcome, result.decision.reason, evaluation=result.evaluation, decision=result.decision,
                      details={**holdout, "duplicate_of": earlier} if earlier is not None else holdout)


def finish(experiment: Experiment, store: Store, attempt_id: int, assessment: Assessment, *,
           source: str | None = None, strategy: str = "", tags: list[str] | None = None,
           commit: str | None = None) -> AttemptRow:
    """Record the attempt (store first: it is the truth), then its runs/ file and the renderings."""
    evaluation = assessment.evaluation
    metric = aggregate_metric(evaluation.cases, experiment.search_cases or list(evaluation.cases)) \
        if evaluation and evaluation.ok else None
    store.finish_attempt(
        attempt_id, outcome=assessment.outcome, reason=assessment.reason, source=source,
        source_hash=source_hash(source, experiment.language) if source else None, strategy=strategy,
        tags=tags or [], evaluation=evaluation, decision=assessment.decision, metric=metric, commit=commit,
        details=assessment.details,
    )
    row = store.attempt(attempt_id)
    assert row is not None
    runs.write_result(experiment, row)
    report.write_all(store, experiment)
    return row


# ---------------------------------------------------------------- the search


async def run_search(experiment: Experiment, provider: ModelProvider, options: RunOptions,
                     progress: Progress) -> RunSummary:
    store = Store(experiment.store_path)
    try:
        for attempt_id in store.mark_interrupted():
            progress.note(f"attempt {attempt_id} did not finish last time; recorded as interrupted")
        evaluator = Evaluator(experiment)
        await ensure_baseline(experiment, store, evaluator, progress)
        report.write_all(store, experiment)
        return await _attempts(experiment, store, evaluator, provider, options, progress)
    finally:
        store.close()


async def _attempts(experiment: Experiment, store: Store, evaluator: Evaluator, provider: ModelProvider,
                    options: RunOptions, progress: Progress) -> RunSummary:
    done: list[int] = []
    model_errors = 0
    for index in range(options.loop):
        stop = _budget_stop(store, options)
        if stop:
            return RunSummary(done, stop)
        attempt_id = store.begin_attempt(model=provider.name)
        progress.started(attempt_id, index + 1, options.loop)
        try:
            row = await run_attempt(experiment, store, evaluator, provider, options, attempt_id)
        except RepliesExhausted:
            store.discard_attempt(attempt_id)
            return RunSummary(done, "the replay file has no more replies")
        except (asyncio.CancelledError, KeyboardInterrupt):
            finish(experiment, store, attempt_id, Assessment(Outcome.INTERRUPTED, "stopped by the user"))
            raise
        done.append(attempt_id)
        progress.finished(row)
        model_errors = model_errors + 1 if row.outcome == Outcome.MODEL_ERROR else 0
        if model_errors >= options.max_model_errors:
            return RunSummary(done, f"{model_errors} model calls in a row failed; last: {row.reason}")
    return RunSummary(done, f"ran {options.loop} attempts")


def _budget_stop(store: Store, options: RunOptions) -> str:
    if options.budget_usd is None:
        return ""
    spent = store.usage_total().cost_usd
    if spent is None:
        return f"--budget-usd {options.budget_usd} cannot be enforced: the model's price is unknown"
    if spent >= options.budget_usd:
        return f"budget reached: ${spent:.4f} of ${options.budget_usd:.2f} spent"
    return ""


async def ensure_baseline(experiment: Experiment, store: Store, evaluator: Evaluator,
                          progress: Progress | None = None, source: str | None = None) -> AttemptRow:
    """Attempt 0: evaluate the seed once (search and holdout cases). A broken seed is a user error."""
    existing = store.baseline()
    if existing is not None:
        return existing
    source = source if source is not None else experiment.baseline_source
    if progress:
        progress.note(f"evaluating the baseline {experiment.config.target.baseline} ...")
    evaluation = await evaluator.evaluate(source, experiment.search_cases + experiment.holdout_cases)
    if not evaluation.ok:
        raise UserError(
            f"{experiment.baseline_path}: the baseline fails its own evaluation: "
            f"{evaluation.failure} {evaluation.reason.splitlines()[0] if evaluation.reason else ''} "
            "(fix: make the baseline build and pass the harness, e.g. with `looplab eval`)"
        )
    metric = aggregate_metric(evaluation.cases, experiment.search_cases or list(evaluation.cases))
    store.record_baseline(source=source, evaluation=evaluation, metric=metric)
    baseline = store.baseline()
    assert baseline is not None
    return baseline


# ---------------------------------------------------------------- context for the next prompt


def prompt_context(store: Store, experiment: Experiment, incumbent: AttemptRow) -> PromptContext:
    cfg = experiment.config.prompt
    recent = store.attempts(outcomes=FAILURES, limit=cfg.failures_shown, newest_first=True)
    memory_md = memory.render_memory_md(memory.build_memory(store, experiment), cfg.memory_chars)
    return PromptContext(
        incumbent=incumbent.source or "",
        incumbent_speedup=_speedup_label(store, experiment, incumbent),
        memory=memory_md,
        failures=[Failure(r.id, r.outcome.value if r.outcome else "", hide_holdout(experiment, r.reason)[:300])
                  for r in recent],
    )


def hide_holdout(experiment: Experiment, text: str) -> str:
    """Holdout case names never reach the model."""
    for name in experiment.holdout_cases:
        text = re.sub(rf"\b{re.escape(name)}\b", "a hidden holdout case", text)
    return text


def best_case_medians(store: Store, experiment: Experiment) -> dict[str, float]:
    """Best median per case among the baseline and all winners (the per-case Pareto front)."""
    pick = min if experiment.config.objective.direction == "minimize" else max
    best: dict[str, float] = {}
    rows = [r for r in [store.baseline(), *store.winners()] if r is not None]
    for row in rows:
        for name, case in row.cases.items():
            if case.ok and case.median is not None:
                best[name] = pick(best.get(name, case.median), case.median)
    return best


def _speedup_label(store: Store, experiment: Experiment, incumbent: AttemptRow) -> str:
    baseline = store.baseline()
    if baseline is None or incumbent.id == 0 or not baseline.metric or not incumbent.metric:
        return ""
    ratio = baseline.metric / incumbent.metric
    if experiment.config.objective.direction == "maximize":
        ratio = 1 / ratio
    return f"x{ratio:.2f}"


def _earlier_same(experiment: Experiment, store: Store, source: str, incumbent: AttemptRow) -> int | None:
    """Id of the incumbent, the baseline or an earlier attempt holding the same normalised program."""
    language = experiment.language
    for row in (incumbent, store.baseline()):
        if row is not None and row.source is not None and normalize(row.source, language) == normalize(source, language):
            return row.id
    found = store.find_by_hash(source_hash(source, language))
    return found.id if found is not None else None


def _commit_message(experiment: Experiment, attempt_id: int, assessment: Assessment, strategy: str) -> str:
    d = assessment.decision
    win = f"x{d.speedup:.2f} [{d.ci_low:.2f}, {d.ci_high:.2f}]" if d and d.speedup and d.ci_low and d.ci_high else ""
    kind = "specialist" if assessment.outcome == Outcome.SPECIALIST else "new best"
    return f"looplab: {experiment.name} attempt {attempt_id}: {kind} {win} {strategy}".strip()




# ---------------------------------------------------------------- `looplab eval`


async def evaluate_file(experiment: Experiment, source: str) -> dict:
    """Judge one candidate source against the incumbent exactly as `run` would, without recording it."""
    store = Store(experiment.store_path)
    try:
        evaluator = Evaluator(experiment)
        await ensure_baseline(experiment, store, evaluator)
        incumbent = store.incumbent()
        assert incumbent is not None
        a = await assess(experiment, store, evaluator, source, incumbent, judge_duplicates=True)
    finally:
        store.close()
    d = a.decision
    cases = a.evaluation.cases if a.evaluation else {}
    return {
        "ok": bool(a.evaluation and a.evaluation.ok),
        "category": a.outcome.value,
        "reason": a.reason,
        "speedup": d.speedup if d else None,
        "ci": [d.ci_low, d.ci_high] if d and d.ci_low is not None else None,
        "rounds": d.rounds if d else 0,
        "unit": experiment.config.objective.unit,
        "cases": {name: {"ok": c.ok, "median": c.median, "error": c.error, "metrics": c.metrics,
                         "speedup": d.cases[name].speedup if d and name in d.cases else None}
                  for name, c in cases.items()},
        "holdout_ok": a.details.get("holdout_ok"),
        "holdout_speedup": a.details.get("holdout_speedup"),
        "incumbent": incumbent.id,
    }
