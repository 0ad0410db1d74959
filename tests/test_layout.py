"""looplab's own names in an experiment folder (looplab/layout.py) and the outcome groups (looplab/records.py):
one list each, and every reader of it agrees."""

from __future__ import annotations

import io
import shutil
import tarfile
import zlib
from pathlib import Path

from looplab import layout
from looplab.config import load_experiment
from looplab.evaluation.build import experiment_fingerprint, private_paths
from looplab.executors.bundle import pack
from looplab.records import FAILURES, NEVER_RAN, NOT_TRIED, RAN_AND_FAILED, Outcome

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"


def _write_looplab_state(root: Path) -> None:
    """Everything looplab (and git, and Python) writes in an experiment folder."""
    for d in (layout.STATE_DIR, layout.RUNS_DIR + "/0001", layout.WINNERS_DIR, ".git", "__pycache__",
              "incumbent.files/src", "harness/__pycache__"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for f in (f"{layout.STATE_DIR}/{layout.STORE_FILE}", f"{layout.RUNS_DIR}/0001/{layout.RESULT_FILE}",
              f"{layout.WINNERS_DIR}/abc1234.c", ".git/HEAD", *layout.LIVE_FILES, "incumbent.c",
              "incumbent.files/src/a.c", "SCORES.json.1.0123abcd.tmp", "harness/__pycache__/x.pyc"):
        (root / f).write_text(f"looplab wrote {f}\n")


def test_bundle_fingerprint_and_hidden_paths_leave_out_the_same_names(tmp_path: Path) -> None:
    root = tmp_path / "matmul"
    shutil.copytree(FIXTURE, root)
    exp = load_experiment(root)
    before_pack, before_print = pack(root)[0], experiment_fingerprint(exp)
    _write_looplab_state(root)
    packed, _ = pack(root)
    with tarfile.open(fileobj=io.BytesIO(zlib.decompress(packed, 31)), mode="r") as tar:
        names = {Path(n).relative_to("matmul").as_posix() for n in tar.getnames()}
    assert names == {p.relative_to(FIXTURE).as_posix() for p in FIXTURE.rglob("*") if p.is_file()}
    assert packed == before_pack  # the same bytes: nothing looplab wrote travels to a worker
    assert experiment_fingerprint(exp) == before_print  # nor invalidates the build cache
    hidden = {p.name for p in private_paths(exp)}
    assert {layout.STATE_DIR, layout.RUNS_DIR, layout.WINNERS_DIR, *layout.LIVE_FILES} <= hidden
    assert {"incumbent.c", "incumbent.files"} <= hidden


def test_the_outcome_groups_partition_the_outcomes() -> None:
    winners = {o for o in Outcome if o.is_winner}
    assert set(FAILURES) == set(RAN_AND_FAILED) | set(NEVER_RAN) | {Outcome.DUPLICATE}
    assert len(FAILURES) == len(set(FAILURES))  # no outcome in two groups
    outside = set(NOT_TRIED) - {Outcome.BASELINE}  # the model, the machinery or a signal, not the candidate
    assert winners | set(FAILURES) | outside == set(Outcome)
    assert not winners & set(FAILURES) and not outside & set(FAILURES) and not outside & winners
    assert [o for o in Outcome if o.is_failure] == [o for o in Outcome if o in FAILURES]
    assert not Outcome.INFRA_ERROR.was_tried and Outcome.SLOWER.was_tried and Outcome.COMPILE_ERROR.was_tried
