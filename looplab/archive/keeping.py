"""Keeping a winner is one recorded transaction; a loop that starts puts the experiment back in step.

1. The store records the decision, with the source and an acceptance key (`accepting`).
2. The archive: winners/<commit>.<ext>, incumbent.<ext> (a new best only: a specialist never touches
   it) and the git commit, whose trailer names the key.
3. The store marks the acceptance done, with the commit.

A kill anywhere leaves the store ahead of the files, never behind. On start, recover() finishes
every half-done acceptance of a dead loop (its commit is found by the key, or made), then makes
incumbent.<ext>, winners/ and runs/*/result.json agree with the store, the single source of truth.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import socket
import traceback
from collections.abc import Callable

from looplab import filesets, layout
from looplab.archive import winners as archive
from looplab.config import Experiment
from looplab.errors import UserError
from looplab.records import Outcome
from looplab.report import runs
from looplab.report import scores as report
from looplab.stopping import RunStopped
from looplab.store import AttemptRow, Store
from looplab.store.faults import disk_fault


def new_key() -> str:
    return secrets.token_hex(8)


def checkout(experiment: Experiment) -> dict[str, str]:
    """Where a winner is archived (several loops on several machines may share one store)."""
    return {"host": socket.gethostname(), "root": str(experiment.root)}


def commit_message(experiment: Experiment, row: AttemptRow) -> str:
    win = f"x{row.speedup:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]" if row.speedup and row.ci_low and row.ci_high \
        else ""
    kind = "specialist" if row.outcome is Outcome.SPECIALIST else "new best"
    return f"looplab: {experiment.name} attempt {row.id}: {kind} {win} {row.strategy}".strip()


def complete(store: Store, experiment: Experiment, row: AttemptRow, *, resume: bool = False) -> AttemptRow:
    """Steps 2 and 3 for a row recorded with its acceptance key (resume: after a dead loop's try)."""
    assert row.accepting and row.source is not None and row.outcome in (Outcome.ACCEPTED, Outcome.SPECIALIST)
    current = store.incumbent()
    new_best = row.outcome is Outcome.ACCEPTED and current is not None and current.id == row.id
    commit = archive.archive_winner(experiment, source=row.source, attempt_id=row.id,
                                    message=commit_message(experiment, row), key=row.accepting,
                                    write_incumbent=new_best, resume=resume)
    store.end_acceptance(row.id, commit)
    done = store.attempt(row.id)
    assert done is not None
    runs.write_result(experiment, done)
    report.write_all(store, experiment)
    return done


def complete_or_stop(store: Store, experiment: Experiment, row: AttemptRow) -> AttemptRow:
    """complete(); if archiving fails (a hook refuses the commit, a full disk), the decision stands in the
    store, the run stops, and the next start finishes archiving it."""
    try:
        return complete(store, experiment, row)
    except Exception as e:
        why = e if isinstance(e, UserError) else disk_fault(e, experiment.root)
        if why is None:
            with contextlib.suppress(OSError):
                runs.write(runs.attempt_dir(experiment, row.id), "error.txt", traceback.format_exc())
            why = f"{type(e).__name__}: {e} (see runs/ error.txt)"
        raise RunStopped(f"{why}; attempt {row.id} stays {row.outcome} in the store and the next run "
                         "archives and commits it") from None


async def recover(store: Store, experiment: Experiment, note: Callable[[str], None]) -> None:
    """What dead loops left: interrupted rows, half-done acceptances, files out of step with the store."""
    for attempt_id in store.mark_interrupted():
        note(f"attempt {attempt_id} did not finish last time; recorded as interrupted")
        row = store.attempt(attempt_id)
        if row is not None:
            runs.write_result(experiment, row)
    async with store.acceptance_lock():  # no other loop archives meanwhile
        if archive.in_git_work_tree(experiment.root) and (done := archive.recover_index_lock(experiment.root)):
            note(done)
        for row in store.pending_acceptances():
            if _archived_here(row, experiment):
                done_row = complete(store, experiment, row, resume=True)
                note(f"attempt {row.id}: finished its acceptance as {row.outcome} (commit {done_row.commit}), "
                     "which its run left half done")
        _repair_incumbent(store, experiment, note)
        _repair_winners(store, experiment, note)
    _repair_results(store, experiment)


def _archived_here(row: AttemptRow, experiment: Experiment) -> bool:
    where = row.details.get("archived_in")
    if isinstance(where, dict):
        return where == checkout(experiment)
    return row.owner.rpartition(":")[0] == socket.gethostname()


def _repair_incumbent(store: Store, experiment: Experiment, note: Callable[[str], None]) -> None:
    inc = store.incumbent()
    live = archive.incumbent_path(experiment)
    if inc is None or inc.source is None or (inc.outcome is Outcome.BASELINE and not live.exists()):
        return
    try:
        if filesets.load(live, as_files=experiment.is_files) == inc.source:
            return
    except (OSError, UnicodeDecodeError, filesets.FilesError):
        pass
    filesets.save(live, inc.source, as_files=experiment.is_files)
    note(f"{live.name} did not hold the store's incumbent (attempt {inc.id}); rewritten from the store")


def _repair_winners(store: Store, experiment: Experiment, note: Callable[[str], None]) -> None:
    """Every winner archived in this checkout has its winners/ file (from the source the store holds)."""
    rows = [r for r in store.winners() if r.commit and r.source is not None and not r.accepting]
    missing = [r for r in rows if not (experiment.winners_dir / f"{r.commit}.{experiment.ext}").exists()]
    if not missing:
        return
    in_git = archive.in_git_work_tree(experiment.root)
    for r in missing:
        ours = archive.has_commit(experiment.root, r.commit) if in_git else \
            r.commit == hashlib.sha256(r.source.encode()).hexdigest()[:12]
        if ours:
            experiment.winners_dir.mkdir(parents=True, exist_ok=True)
            filesets.save(experiment.winners_dir / f"{r.commit}.{experiment.ext}", r.source, as_files=experiment.is_files)
            note(f"winners/{r.commit}.{experiment.ext} was missing; rewritten from the store (attempt {r.id})")


def _repair_results(store: Store, experiment: Experiment) -> None:
    """Every attempt folder gets its result.json (a kill or a full disk may have stopped the write)."""
    if not experiment.runs_dir.is_dir():
        return
    for d in experiment.runs_dir.iterdir():
        if d.is_dir() and d.name.isdigit() and not (d / layout.RESULT_FILE).exists():
            row = store.attempt(int(d.name))
            if row is not None and row.outcome is not None:
                runs.write_result(experiment, row)
