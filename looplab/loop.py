"""The orchestrator, in the order things happen: the run → its workers → one attempt.

One attempt is one record moving forward: an AttemptPlan (the incumbent snapshot every later step
uses, the parents, the memory) → prompt → model reply → candidate → assessment (novelty, screen,
judge: evaluation/assess.py) → repair turns while it failed and turns are left (propose/repair.py) →
keep (archive/keeping.py) → record (the store first, then runs/ and the renderings). run_search keeps
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
from looplab.acceptance import objective_value, pairwise
from looplab.archive import keeping
from looplab.config import Experiment
from looplab.errors import UserError
from looplab.evaluation.assess import Assessment, assess
from looplab.evaluation.baseline import ensure_baseline
from looplab.executors import Executor, make_executor
from looplab.models.base import ModelAccessError, ModelError, ModelProvider, NoRepair, RepliesExhausted
from looplab.models.retry import retry_notes
from looplab.propose import memory, reflect, repair
from looplab.propose.context import novelty_index, prompt_context, search_view
from looplab.propose.extract import ExtractError, extract_candidate, next_ideas, source_hash
from looplab.propose.parents import Plan, choose_plan
from looplab.propose.prompt import render_markdown, render_prompt
from looplab.records import Candidate, Outcome
from looplab.report import runs
from looplab.report import scores as report
from looplab.screen.novelty import NoveltyIndex
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
class RunSummary:
    attempts: list[int]
    stopped_because: str
    stop: StopReason = StopReason.LOOP_DONE


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
class RunState:
    """What the workers of one run share: slots handed out, attempts done, and whether to stop."""

    slots: int = 0  # attempt slots handed out (a duplicate asks again within its slot)
    in_flight: int = 0
    model_errors: int = 0  # consecutive attempts that failed outside the candidate
    stop: str = ""  # why the run stops; empty while it goes on
    why: StopReason = StopReason.LOOP_DONE
    done: list[int] = field(default_factory=list)


@dataclass
class AttemptPlan:
    """Everything an attempt starts from, read once: the prompt, the parent_id and the judge all see
    the same incumbent even when another worker replaces it meanwhile (the keep step re-judges then)."""

    id: int
    index: int  # 1-based slot number within this run
    incumbent: AttemptRow
    plan: Plan
    memory: dict
    repeated: tuple[AttemptRow, int] | None = None  # the duplicate this ask follows, how many in a row


# ---------------------------------------------------------------- the run


async def run_search(experiment: Experiment, provider: ModelProvider, options: RunOptions,
                     progress: Progress) -> RunSummary:
    store = open_store(experiment, options.store)
    retry_notes.set(progress.note)  # the workers (tasks made below) say when a model call is retried
    beating = rendering = None
    try:
        store.heartbeat()
        beating = asyncio.create_task(_heartbeat(store))
        await keeping.recover(store, experiment, progress.note)
        evaluator = make_executor(experiment, options.executor, ray_address=options.ray_address)
        await ensure_baseline(experiment, store, evaluator, progress)
        # SCORES and MEMORY are not on the way to the first model request: rewritten as a refresh is,
        # REFRESH_S from now unless an attempt ends first, and at the end of the run (below).
        rendering = asyncio.get_running_loop().call_later(report.REFRESH_S, report.refresh, store, experiment)
        s = Search(experiment, store, evaluator, provider, options, novelty_index(store, experiment),
                   random.Random(options.seed))
        indexing = asyncio.get_running_loop().run_in_executor(None, s.novelty.prepare)  # beside the first model call
        try:
            return await _workers(s, progress)
        finally:
            await asyncio.shield(indexing)  # the store closes below only once the thread is done with it
    finally:
        if beating is not None:
            beating.cancel()
        with contextlib.suppress(Exception):  # a store that went away must not hide why the run ended
            report.flush(store, experiment)  # renderings still waiting are written now
            if rendering is not None:  # past the baseline: the renderings end current
                rendering.cancel()
                report.write_all(store, experiment)
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


# ---------------------------------------------------------------- the workers


async def _workers(s: Search, progress: Progress) -> RunSummary:
    """`workers` tasks draw attempt slots until the loop count, the budget or the provider runs out."""
    state = RunState()
    changed = asyncio.Condition()  # an attempt ended or the run stopped: waiting workers look again

    async def worker() -> None:
        while not state.stop and state.slots < s.options.loop:
            state.slots += 1
            await _slot(s, progress, state, changed, state.slots)
        async with changed:
            changed.notify_all()

    await all_or_none(worker() for _ in range(max(1, s.options.workers)))
    return RunSummary(sorted(state.done), state.stop or f"ran {s.options.loop} attempts", state.why)


async def _slot(s: Search, progress: Progress, state: RunState, changed: asyncio.Condition, index: int) -> None:
    """One attempt slot: asks again after a duplicate, up to [search] duplicate_retries times."""
    options = s.options
    repeated: tuple[AttemptRow, int] | None = None
    for ask in range(s.experiment.config.search.duplicate_retries + 1):
        async with changed:  # spend no more concurrently than one worker would in sequence
            await changed.wait_for(lambda: state.stop or not budget.reserved(s.store, options.budget_usd,
                                                                              state.in_flight))
        if not state.stop:
            state.why, state.stop = budget.stop(s.store, options.budget_usd)
        if state.stop:
            return
        state.in_flight += 1
        try:
            row = await _one_attempt(s, progress, index, repeated)
        finally:
            state.in_flight -= 1
        if row is None:
            state.why, state.stop = StopReason.NO_REPLIES, "the replay file has no more replies"
            return
        state.done.append(row.id)
        broken = row.outcome in (Outcome.MODEL_ERROR, Outcome.INFRA_ERROR)
        state.model_errors = state.model_errors + 1 if broken else 0
        if state.model_errors >= options.max_model_errors and not state.stop:
            state.why = StopReason.ERRORS
            state.stop = f"{state.model_errors} attempts in a row failed outside the candidate; last: {row.reason}"
        if options.reflect_every and len(state.done) % options.reflect_every == 0:
            await reflect.reflect(s.experiment, s.store, s.provider, timeout_s=options.model_timeout_s)
        async with changed:
            changed.notify_all()
        if row.outcome != Outcome.DUPLICATE:  # a duplicate does not use up the slot: ask again
            return
        repeated = (row, ask + 1)


# ---------------------------------------------------------------- one attempt


async def _one_attempt(s: Search, progress: Progress, index: int,
                       repeated: tuple[AttemptRow, int] | None = None) -> AttemptRow | None:
    """Plan and begin one attempt, run it, and record whatever ended it (None: the replies ran out)."""
    attempt = _plan(s, index, repeated)
    progress.started(attempt.id, index, s.options.loop)
    try:
        row = await run_attempt(s, attempt)
    except RepliesExhausted:
        s.store.discard_attempt(attempt.id)
        shutil.rmtree(runs.attempt_dir(s.experiment, attempt.id), ignore_errors=True)
        return None
    except (asyncio.CancelledError, KeyboardInterrupt) as e:
        why = e.args[0] if e.args and isinstance(e.args[0], str) else "stopped by the user"
        with contextlib.suppress(Exception):  # a store or disk that failed: the next start records it
            finish(s, attempt.id, Assessment(Outcome.INTERRUPTED, why))
        raise
    except RunStopped:
        raise  # the attempt is recorded already
    except ModelAccessError as e:  # the judge model refused its key mid-judgement: no attempt can be judged
        with contextlib.suppress(Exception):
            finish(s, attempt.id, Assessment(Outcome.INFRA_ERROR, str(e)))
        raise RunStopped(str(e)) from None
    except Exception as e:  # a fault of looplab or the machine, never of the candidate: record it
        fatal = e if isinstance(e, UserError) else disk_fault(e, s.experiment.root)
        if fatal is not None:  # a git hook refused the winner, a full disk, a broken store: record, stop
            with contextlib.suppress(Exception):  # where the store still takes writes
                finish(s, attempt.id, Assessment(Outcome.INFRA_ERROR, str(fatal)))
            raise fatal from None
        runs.write(runs.attempt_dir(s.experiment, attempt.id), "error.txt", traceback.format_exc())
        row = finish(s, attempt.id, Assessment(Outcome.INFRA_ERROR, f"{type(e).__name__}: {e} (see runs/ error.txt)"))
    progress.finished(row)
    return row


def _plan(s: Search, index: int, repeated: tuple[AttemptRow, int] | None) -> AttemptPlan:
    """0. Read the incumbent and the memory once, choose the parents, and begin the attempt's row."""
    incumbent = s.store.incumbent()
    assert incumbent is not None and incumbent.source is not None
    mem = memory.build_memory(s.store, s.experiment)  # shared by the plan and the prompt
    plan = choose_plan(search_view(s.store, s.experiment, incumbent, mem), s.experiment.config.search, s.rng)
    attempt_id = s.store.begin_attempt(
        model=s.provider.name, parent_id=plan.parent_id if plan.parents else incumbent.id,
        details={"plan": plan.kind.value, "parents": [p.id for p in plan.parents]})
    return AttemptPlan(attempt_id, index, incumbent, plan, mem, repeated)


async def run_attempt(s: Search, attempt: AttemptPlan) -> AttemptRow:
    experiment, store, incumbent = s.experiment, s.store, attempt.incumbent
    run_dir = runs.attempt_dir(experiment, attempt.id)
    pairwise.recording(store, attempt.id, s.options.budget_usd)  # a judge model's calls (judged objectives)

    # 1. Prompt: the task, the incumbent (and the plan's parents), the memory, the latest failures;
    #    after a duplicate, which attempt it repeated and what that scored (asked a little hotter).
    context = prompt_context(store, experiment, incumbent, attempt.plan, attempt.memory)
    temperature = s.options.temperature
    if attempt.repeated is not None:
        said, temperature = repair.after_duplicate(experiment, store, *attempt.repeated, s.options.temperature)
        context.direction = f"{context.direction}. {said}" if context.direction else said
    messages = render_prompt(experiment, context)
    runs.write(run_dir, "prompt.md", render_markdown(messages))

    # 2-6. Model → extract → novelty → screen → judge, in turns: a candidate that fails to extract, pass
    #      the screen, build or validate goes back to the model with the failure (repair.py).
    turns = repair.Turns(experiment, run_dir, messages, repair.turns_allowed(experiment, s.options.repair_turns),
                         incumbent.source or "")
    stop: ModelAccessError | None = None
    if attempt.index == 1:  # a host for step 6, started once the run's first model call is under way
        asyncio.get_running_loop().call_soon(s.evaluator.warm_up)
    while True:
        try:
            reply = await repair.propose(s, attempt.id, turns, temperature)
        except (ModelError, NoRepair) as e:
            if not turns.done:  # no candidate yet: the attempt is the model's failure
                row = finish(s, attempt.id, Assessment(Outcome.MODEL_ERROR, str(e)))
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

    # 7-8. Keep what is genuinely better, then record.
    row = await _keep(s, attempt.id, turns, incumbent, assessment, candidate)
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
    return candidate, await assess(experiment, s.store, s.evaluator, s.novelty, candidate.source, incumbent)


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
        return _finish_candidate(s, attempt_id, assessment, candidate, reply_text)
    async with store.acceptance_lock():  # across coroutines, processes and machines
        current = store.incumbent()
        if current is not None and current.id != incumbent.id:
            again = await assess(experiment, store, s.evaluator, s.novelty, candidate.source, current)
            again.details["turns"] = assessment.details["turns"]
            assessment = again
        if assessment.outcome not in (Outcome.ACCEPTED, Outcome.SPECIALIST):
            return _finish_candidate(s, attempt_id, assessment, candidate, reply_text)
        # The store records the decision first; archive and commit follow; a restart finishes a half-done one.
        assessment.details["archived_in"] = keeping.checkout(experiment)
        row = _finish_candidate(s, attempt_id, assessment, candidate, reply_text, accepting=keeping.new_key())
        return keeping.complete_or_stop(store, experiment, row)


def _finish_candidate(s: Search, attempt_id: int, assessment: Assessment, candidate: Candidate, reply_text: str,
                      *, accepting: str | None = None) -> AttemptRow:
    assessment.details["next_ideas"] = next_ideas(reply_text)
    row = finish(s, attempt_id, assessment, source=candidate.source, strategy=candidate.strategy,
                 tags=candidate.tags, accepting=accepting)
    s.novelty.record(attempt_id, candidate.source, assessment.outcome)  # valid runs only: repairs are new
    return row


def finish(s: Search, attempt_id: int, assessment: Assessment, *, source: str | None = None,
           strategy: str = "", tags: list[str] | None = None, accepting: str | None = None) -> AttemptRow:
    """8. Record the attempt (store first: it is the truth), then its runs/ file and the renderings."""
    experiment, store = s.experiment, s.store
    evaluation = assessment.evaluation
    metric = objective_value(experiment.config.objective, evaluation.cases,
                             experiment.search_cases or list(evaluation.cases)) if evaluation and evaluation.ok else None
    store.finish_attempt(
        attempt_id, outcome=assessment.outcome, reason=assessment.reason, source=source,
        source_hash=source_hash(source, experiment.language) if source else None, strategy=strategy,
        tags=tags or [], evaluation=evaluation, decision=assessment.decision, metric=metric, commit=None,
        details=assessment.details, holdout=assessment.holdout, accepting=accepting,
    )
    row = store.attempt(attempt_id)
    assert row is not None
    runs.write_result(experiment, row)
    report.refresh(store, experiment)  # at most every report.REFRESH_S, and at the end of the run
    return row
