"""The orchestrator. Read top to bottom: one attempt goes plan → prompt → model → extract →
novelty → screen → judge (build, validate, measure, decide) → repair turns while it failed and
turns are left (repair.py) → keep → record; run_search keeps
`workers` attempts in flight within the budgets and resumes where the store left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import traceback
from dataclasses import dataclass, field
from typing import Protocol

from looplab import budget
from looplab.acceptance import objective_value, pairwise, recorded_results
from looplab.acceptance.choose import measure_noise
from looplab.acceptance.judge import judge
from looplab.archive import keeping
from looplab.config import Experiment
from looplab.errors import UserError
from looplab.executors import Executor, make_executor
from looplab.models.base import ModelAccessError, ModelError, ModelProvider, NoRepair, RepliesExhausted
from looplab.models.retry import retry_notes
from looplab.propose import memory, reflect, repair
from looplab.propose.context import best_case_medians, novelty_index, prompt_context, search_view
from looplab.propose.extract import ExtractError, extract_candidate, next_ideas, source_hash
from looplab.propose.parents import Plan, choose_plan
from looplab.propose.prompt import render_markdown, render_prompt
from looplab.records import Candidate, Decision, Evaluation, Outcome
from looplab.report import runs
from looplab.report import scores as report
from looplab.screen.novelty import NoveltyIndex
from looplab.screen.policy import screen
from looplab.stopping import RunStopped, StopReason, all_or_none
from looplab.store import AttemptRow, Store, open_store
from looplab.store.faults import disk_fault
from looplab.store.loops import HEARTBEAT_S


@dataclass
class RunOptions:
    loop: int
    temperature: float | None = None
    max_tokens: int | None = None
    budget_usd: float | None = None
    model_timeout_s: float = 600.0
    max_model_errors: int = 5  # consecutive model or infrastructure failures before the run stops
    workers: int = 1  # attempts in flight at once
    reflect_every: int = 0  # a reflection call after every N attempts; 0 = never
    seed: int | None = None  # for the strategy mix; None = fresh each run
    store: str | None = None  # store URL (postgresql://...); None: $LOOPLAB_STORE or the SQLite file
    executor: str = "local"  # where evaluations run: "local" or "ray"
    ray_address: str | None = None
    repair_turns: int | None = None  # turns a failed candidate may be fixed in; None: [search] repair_turns


class Progress(Protocol):
    """What the loop tells the person watching (terminal, logs, dashboard)."""

    def started(self, attempt_id: int, index: int, total: int) -> None: ...
    def finished(self, row: AttemptRow) -> None: ...
    def note(self, text: str) -> None: ...


@dataclass
class Search:
    """The collaborators one run shares between its attempts (no behaviour of its own)."""

    experiment: Experiment
    store: Store
    evaluator: Executor
    provider: ModelProvider
    options: RunOptions
    novelty: NoveltyIndex
    rng: random.Random


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
    stop: StopReason = StopReason.LOOP_DONE


# ---------------------------------------------------------------- one attempt


async def run_attempt(s: Search, attempt_id: int, plan: Plan, mem: dict,
                      repeated: tuple[AttemptRow, int] | None = None) -> AttemptRow:
    """repeated: (the duplicate this attempt follows, how many in a row), when the last ask was one."""
    experiment, store = s.experiment, s.store
    incumbent = store.incumbent()
    assert incumbent is not None and incumbent.source is not None
    run_dir = runs.attempt_dir(experiment, attempt_id)
    pairwise.recording(store, attempt_id, s.options.budget_usd)  # a judge model's calls (judged objectives)

    # 1. Prompt: the task, the incumbent (and the plan's parents), the memory, the latest failures;
    #    after a duplicate, which attempt it repeated and what that scored (asked a little hotter).
    context = prompt_context(store, experiment, incumbent, plan, mem)
    temperature = s.options.temperature
    if repeated is not None:
        said, temperature = repair.after_duplicate(experiment, store, *repeated, s.options.temperature)
        context.direction = f"{context.direction}. {said}" if context.direction else said
    messages = render_prompt(experiment, context)
    runs.write(run_dir, "prompt.md", render_markdown(messages))

    # 2-6. Model → extract → novelty → screen → judge, in turns: a candidate that fails to extract, pass
    #      the screen, build or validate goes back to the model with the failure (repair.py).
    turns = repair.Turns(experiment, run_dir, messages, repair.turns_allowed(experiment, s.options.repair_turns),
                         incumbent.source)
    stop: ModelAccessError | None = None
    while True:
        try:
            reply = await repair.propose(s, attempt_id, turns, temperature)
        except (ModelError, NoRepair) as e:
            if not turns.done:  # no candidate yet: the attempt is the model's failure
                row = finish(s, attempt_id, Assessment(Outcome.MODEL_ERROR, str(e)))
                if isinstance(e, ModelAccessError):  # no later call can succeed: stop now, not after N failures
                    raise RunStopped(str(e)) from None
                return row
            stop = e if isinstance(e, ModelAccessError) else None
            break  # a repair that never came: the last turn's verdict stands
        candidate, assessment = await _assess_reply(s, reply.text, incumbent, turns)
        turns.record(reply, candidate, assessment.outcome, assessment.reason,
                     str(assessment.evaluation.log if assessment.evaluation else ""))
        if not turns.wants_repair() or budget.stop(store, s.options.budget_usd)[1]:  # no repair past the budget
            break
        turns.ask_again()
    row = await _keep(s, attempt_id, turns, incumbent, assessment, candidate)
    if stop is not None:
        raise RunStopped(str(stop))
    return row


async def _assess_reply(s: Search, text: str, incumbent: AttemptRow, turns: repair.Turns
                        ) -> tuple[Candidate | None, Assessment]:
    """3. Extract exactly one candidate for the target; 4-6. novelty, screen, judge: the evaluator decides."""
    experiment = s.experiment
    try:
        candidate = extract_candidate(text, language=experiment.language, target=experiment.target,
                                      incumbent=incumbent.source or "",
                                      allow_helpers=experiment.config.screen.allow_helpers,
                                      files=experiment.config.target.files)
    except ExtractError as e:
        return None, Assessment(Outcome.EXTRACT_ERROR, str(e))
    same = turns.earlier_same(candidate)  # a repair that changed nothing: the same failure, not a duplicate
    if same is not None:
        return candidate, Assessment(same.outcome, f"unchanged from turn {same.number}: {same.reason}")
    return candidate, await assess(s, candidate.source, incumbent)


async def _keep(s: Search, attempt_id: int, turns: repair.Turns, incumbent: AttemptRow, assessment: Assessment,
                candidate: Candidate | None) -> AttemptRow:
    """7. Keep what is genuinely better, one acceptance at a time: if another attempt replaced the
    incumbent while this one was judged, judge again against the new one before keeping it."""
    experiment, store = s.experiment, s.store
    assessment.details["turns"] = turns.details()
    reply_text = turns.done[-1].reply.text
    if candidate is None:
        return finish(s, attempt_id, assessment)
    if assessment.outcome not in (Outcome.ACCEPTED, Outcome.SPECIALIST):
        return _finish_candidate(s, attempt_id, assessment, candidate, reply_text, commit=None)
    async with store.acceptance_lock():  # across coroutines, processes and machines
        current = store.incumbent()
        if current is not None and current.id != incumbent.id:
            again = await assess(s, candidate.source, current)
            again.details["turns"] = assessment.details["turns"]
            assessment = again
        if assessment.outcome not in (Outcome.ACCEPTED, Outcome.SPECIALIST):
            return _finish_candidate(s, attempt_id, assessment, candidate, reply_text, commit=None)
        # The store records the decision first; archive and commit follow; a restart finishes a half-done one.
        assessment.details["archived_in"] = keeping.checkout(experiment)
        row = _finish_candidate(s, attempt_id, assessment, candidate, reply_text, commit=None,
                                accepting=keeping.new_key())
        return keeping.complete_or_stop(store, experiment, row)


async def assess(s: Search, source: str, incumbent: AttemptRow, *, judge_duplicates: bool = False) -> Assessment:
    """Novelty → screen → judge for one candidate source (shared by `run` and `eval`)."""
    experiment = s.experiment
    check = experiment.config.search.novelty
    earlier = _earlier_same(experiment, s.store, source) if check else None
    near = s.novelty.nearest(source) if check and earlier is None else None
    duplicate = {}
    if earlier is not None:
        duplicate = {"duplicate_of": earlier, "reason": f"same program as attempt {earlier} (after "
                     "normalising whitespace and comments); propose something different"}
    elif near is not None:
        duplicate = {"duplicate_of": near[0], "similarity": round(near[1], 3),
                     "reason": f"near-duplicate of attempt {near[0]} (similarity {near[1]:.2f}); "
                     "propose something substantially different"}
    if duplicate and not judge_duplicates:
        return Assessment(Outcome.DUPLICATE, duplicate.pop("reason"), details=duplicate)
    baseline = s.store.baseline()
    verdict = screen(source, language=experiment.language, policy=experiment.config.screen,
                     baseline=baseline.source or "" if baseline else "")
    if verdict is not None:
        return Assessment(verdict.outcome, verdict.reason, details={"rule": verdict.rule})
    result = await judge(experiment, s.evaluator, candidate_source=source, incumbent_source=incumbent.source or "",
                         best_case_medians=best_case_medians(s.store, experiment),
                         incumbent_cases=recorded_results(incumbent.cases, incumbent.details),
                         noise=baseline.details.get("noise") if baseline else None)
    details: dict = {"judged_against": incumbent.id}
    if result.holdout is not None:
        details.update(holdout_ok=result.holdout.ok, holdout_speedup=result.decision.holdout_speedup,
                       holdout_cases={name: c.to_dict() for name, c in result.holdout.cases.items()})
    outcome, reason = result.decision.outcome, result.decision.reason
    if duplicate:
        outcome, reason = Outcome.DUPLICATE, duplicate.pop("reason")
        details.update(duplicate)
    return Assessment(outcome, reason, evaluation=result.evaluation, decision=result.decision, details=details)


def _finish_candidate(s: Search, attempt_id: int, assessment: Assessment, candidate: Candidate, reply_text: str,
                      *, commit: str | None, accepting: str | None = None) -> AttemptRow:
    assessment.details["next_ideas"] = next_ideas(reply_text)
    row = finish(s, attempt_id, assessment, source=candidate.source, strategy=candidate.strategy,
                 tags=candidate.tags, commit=commit, accepting=accepting)
    s.novelty.record(attempt_id, candidate.source, assessment.outcome)  # valid runs only: repairs are new
    return row


def finish(s: Search, attempt_id: int, assessment: Assessment, *, source: str | None = None,
           strategy: str = "", tags: list[str] | None = None, commit: str | None = None,
           accepting: str | None = None) -> AttemptRow:
    """Record the attempt (store first: it is the truth), then its runs/ file and the renderings."""
    experiment, store = s.experiment, s.store
    evaluation = assessment.evaluation
    metric = objective_value(experiment.config.objective, evaluation.cases,
                             experiment.search_cases or list(evaluation.cases)) if evaluation and evaluation.ok else None
    store.finish_attempt(
        attempt_id, outcome=assessment.outcome, reason=assessment.reason, source=source,
        source_hash=source_hash(source, experiment.language) if source else None, strategy=strategy,
        tags=tags or [], evaluation=evaluation, decision=assessment.decision, metric=metric, commit=commit,
        details=assessment.details, accepting=accepting,
    )
    row = store.attempt(attempt_id)
    assert row is not None
    runs.write_result(experiment, row)
    report.refresh(store, experiment)  # at most every report.REFRESH_S, and at the end of the run
    return row


# ---------------------------------------------------------------- the search


async def run_search(experiment: Experiment, provider: ModelProvider, options: RunOptions,
                     progress: Progress) -> RunSummary:
    store = open_store(experiment, options.store)
    retry_notes.set(progress.note)  # the workers (tasks made below) say when a model call is retried
    beating = None
    try:
        store.heartbeat()
        beating = asyncio.create_task(_heartbeat(store))
        await keeping.recover(store, experiment, progress.note)
        evaluator = make_executor(experiment, options.executor, ray_address=options.ray_address)
        await ensure_baseline(experiment, store, evaluator, progress)
        report.write_all(store, experiment)
        s = Search(experiment, store, evaluator, provider, options, novelty_index(store, experiment),
                   random.Random(options.seed))
        return await _attempts(s, progress)
    finally:
        if beating is not None:
            beating.cancel()
        with contextlib.suppress(Exception):  # a store that went away must not hide why the run ended
            report.flush(store, experiment)  # renderings still waiting are written now
        with contextlib.suppress(Exception):
            store.end_heartbeat()
        store.close()
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()  # SDK clients hold connections that must close inside the loop


async def _heartbeat(store: Store) -> None:
    """Tells loops on other hosts sharing the store that this one is alive (see Store.silent_loops)."""
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        with contextlib.suppress(Exception):  # a missed beat must not stop the search; the next may land
            store.heartbeat()


async def _attempts(s: Search, progress: Progress) -> RunSummary:
    """`workers` tasks draw attempt slots until the loop count, the budget or the provider runs out."""
    options = s.options
    done: list[int] = []
    state = {"slots": 0, "stop": "", "why": StopReason.LOOP_DONE, "model_errors": 0, "in_flight": 0}
    changed = asyncio.Condition()  # an attempt ended or the run stopped: waiting workers look again

    async def worker() -> None:
        while not state["stop"] and state["slots"] < options.loop:
            state["slots"] += 1
            index = state["slots"]
            repeated: tuple[AttemptRow, int] | None = None  # the duplicate the next ask follows, how many in a row
            for ask in range(s.experiment.config.search.duplicate_retries + 1):
                async with changed:  # spend no more concurrently than one worker would in sequence
                    await changed.wait_for(lambda: state["stop"] or not budget.reserved(s.store, options.budget_usd,
                                                                                          state["in_flight"]))
                if not state["stop"]:
                    state["why"], state["stop"] = budget.stop(s.store, options.budget_usd)
                if state["stop"]:
                    break
                state["in_flight"] += 1
                try:
                    row = await _one_attempt(s, progress, index, repeated)
                finally:
                    state["in_flight"] -= 1
                if row is None:
                    state["why"], state["stop"] = StopReason.NO_REPLIES, "the replay file has no more replies"
                    break
                done.append(row.id)
                broken = row.outcome in (Outcome.MODEL_ERROR, Outcome.INFRA_ERROR)
                state["model_errors"] = state["model_errors"] + 1 if broken else 0
                if state["model_errors"] >= options.max_model_errors and not state["stop"]:
                    state["why"] = StopReason.ERRORS
                    state["stop"] = f"{state['model_errors']} attempts in a row failed outside the candidate; " \
                                    f"last: {row.reason}"
                if options.reflect_every and len(done) % options.reflect_every == 0:
                    await reflect.reflect(s.experiment, s.store, s.provider, timeout_s=options.model_timeout_s)
                async with changed:
                    changed.notify_all()
                if row.outcome != Outcome.DUPLICATE:  # a duplicate does not use up the slot: ask again
                    break
                repeated = (row, ask + 1)
        async with changed:
            changed.notify_all()

    await all_or_none(worker() for _ in range(max(1, options.workers)))
    return RunSummary(sorted(done), state["stop"] or f"ran {options.loop} attempts", state["why"])


async def _one_attempt(s: Search, progress: Progress, index: int,
                       repeated: tuple[AttemptRow, int] | None = None) -> AttemptRow | None:
    mem = memory.build_memory(s.store, s.experiment)  # once per attempt, shared by plan and prompt
    plan = choose_plan(search_view(s.store, s.experiment, mem), s.experiment.config.search, s.rng)
    attempt_id = s.store.begin_attempt(
        model=s.provider.name, parent_id=plan.parent_id if plan.parents else s.store.incumbent().id,
        details={"plan": plan.kind, "parents": [p.id for p in plan.parents]})
    progress.started(attempt_id, index, s.options.loop)
    try:
        row = await run_attempt(s, attempt_id, plan, mem, repeated)
    except RepliesExhausted:
        s.store.discard_attempt(attempt_id)
        shutil.rmtree(runs.attempt_dir(s.experiment, attempt_id), ignore_errors=True)
        return None
    except (asyncio.CancelledError, KeyboardInterrupt) as e:
        why = e.args[0] if e.args and isinstance(e.args[0], str) else "stopped by the user"
        with contextlib.suppress(Exception):  # a store or disk that failed: the next start records it
            finish(s, attempt_id, Assessment(Outcome.INTERRUPTED, why))
        raise
    except RunStopped:
        raise  # the attempt is recorded already
    except Exception as e:  # a fault of looplab or the machine, never of the candidate: record it
        fatal = e if isinstance(e, UserError) else disk_fault(e, s.experiment.root)
        if fatal is not None:  # a git hook refused the winner, a full disk, a broken store: record, stop
            with contextlib.suppress(Exception):  # where the store still takes writes
                finish(s, attempt_id, Assessment(Outcome.INFRA_ERROR, str(fatal)))
            raise fatal from None
        runs.write(runs.attempt_dir(s.experiment, attempt_id), "error.txt", traceback.format_exc())
        row = finish(s, attempt_id, Assessment(Outcome.INFRA_ERROR, f"{type(e).__name__}: {e} (see runs/ error.txt)"))
    progress.finished(row)
    return row


async def ensure_baseline(experiment: Experiment, store: Store, evaluator: Executor,
                          progress: Progress | None = None, source: str | None = None) -> AttemptRow:
    """Attempt 0: evaluate the seed once (search and holdout cases). A broken seed is a user error."""
    existing = store.baseline()
    if existing is not None:
        return existing
    async with store.acceptance_lock():  # loops starting together measure the baseline once
        return store.baseline() or await _record_baseline(experiment, store, evaluator, progress, source)


async def _record_baseline(experiment: Experiment, store: Store, evaluator: Executor,
                           progress: Progress | None, source: str | None) -> AttemptRow:
    source = source if source is not None else experiment.baseline_source
    if progress:
        progress.note(f"evaluating the baseline {experiment.config.target.baseline} ...")
    evaluation = await evaluator.evaluate(source, experiment.search_cases + experiment.holdout_cases)
    if not evaluation.ok:
        first = evaluation.reason.splitlines()[0] if evaluation.reason else ""
        raise UserError(f"{experiment.baseline_path}: the baseline fails its own evaluation: "
                        f"{evaluation.failure} {first} (fix: make the baseline build and pass the harness)")
    metric = objective_value(experiment.config.objective, evaluation.cases,
                             experiment.search_cases or list(evaluation.cases))
    noise = await measure_noise(experiment, evaluator, source, evaluation)  # which score rule will decide
    store.record_baseline(source=source, evaluation=evaluation, metric=metric,
                          source_hash=source_hash(source, experiment.language), extra={"noise": noise.value})
    baseline = store.baseline()
    assert baseline is not None
    return baseline


def _earlier_same(experiment: Experiment, store: Store, source: str) -> int | None:
    """Id of the earliest attempt (the baseline included) holding the same normalised program."""
    found = store.find_by_hash(source_hash(source, experiment.language))
    if found is None or found.outcome in (Outcome.INFRA_ERROR, Outcome.INTERRUPTED):
        return None  # the machinery failed, not the candidate: it deserves another try
    return found.id
