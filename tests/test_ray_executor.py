"""The ray executor on a real local Ray cluster (2 CPUs): real gcc and harness runs on Ray workers,
the experiment shipped as a tarball, a worker killed mid-evaluation, per-node exclusive timing."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import tarfile
import time
from pathlib import Path

import pytest

from looplab.acceptance.judge import judge
from looplab.config import Experiment, load_experiment
from looplab.errors import UserError
from looplab.evaluation.evaluator import Evaluator
from looplab.executors import make_executor
from looplab.executors.bundle import cache_root, pack
from looplab.executors.worker import evaluate_bundle
from looplab.records import Outcome
from looplab.resources import ResourcesConfig

pytestmark = pytest.mark.slow  # a real Ray cluster: about a minute on 2 cores
ray = pytest.importorskip("ray", reason="Ray is not installed (fix: pip install 'looplab[ray]')")
from looplab.executors.ray import RayExecutor  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"
NAIVE = (FIXTURE / "naive.c").read_text()
WRONG = NAIVE.replace("c[i * n + j] = acc;", "c[i * n + j] = acc * 0.5f;")
BROKEN = NAIVE.replace("float acc = 0.0f;", "float acc = 0.0f")
# Correct, but the first call of each run spins for a second or two (no library call: the screen and the
# harness's worker allow no sleep): long enough to kill its worker mid-evaluation.
SLEEPY = NAIVE.replace("{\n", "{\n    static int slept;\n    if (!slept) { slept = 1;"
                       " for (volatile long spin = 0; spin < 1000000000L; spin++) {} }\n", 1)
IKJ = """void matmul(float* restrict c, const float* restrict a, const float* restrict b, int n) {
    for (int i = 0; i < n; i++) {
        float* restrict crow = c + (long)i * n;
        for (int j = 0; j < n; j++) crow[j] = 0.0f;
        for (int k = 0; k < n; k++) {
            const float aik = a[i * n + k];
            const float* restrict brow = b + (long)k * n;
            for (int j = 0; j < n; j++) crow[j] += aik * brow[j];
        }
    }
}
"""
# An incumbent doing the work four times: the improvement stays clear on a busy 2-core machine.
SLOW = NAIVE.replace("void matmul(", "static void once(") + (
    "void matmul(float* c, const float* a, const float* b, int n) {\n"
    "    for (int r = 0; r < 4; r++) once(c, a, b, n);\n}\n")
TASK_TITLE = "ray::_remote_evaluate"  # Ray names a worker process after the task it is running


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", namespace="looplab-tests",
             resources={"looplab_test_slot": 2}, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    root = tmp_path_factory.mktemp("exp") / "matmul"
    shutil.copytree(FIXTURE, root)
    # looplab's own state stays home: none of this may travel to the workers.
    for junk in (".looplab/looplab.db", "runs/0001/prompt.md", "winners/abc123.c", "SCORES.md", "incumbent.c"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text("local only")
    return load_experiment(root)


@pytest.fixture(scope="module")
def executor(cluster, experiment: Experiment) -> RayExecutor:
    return RayExecutor(experiment)


def run(coro):
    return asyncio.run(coro)


def test_bundle_holds_the_experiment_and_nothing_of_its_state(experiment: Experiment) -> None:
    data, digest = pack(experiment.root)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = sorted(tar.getnames())
    assert names == ["matmul/EXPERIMENT.md", "matmul/experiment.toml", "matmul/harness/bench.c", "matmul/naive.c"]
    assert data[4:8] == b"\0\0\0\0"  # no gzip timestamp: the digest depends on the files only
    elsewhere = experiment.root.parent.parent / "copy" / "matmul"
    shutil.copytree(experiment.root, elsewhere, copy_function=shutil.copyfile)  # new paths, new mtimes
    assert pack(elsewhere)[1] == digest  # same files, same digest: workers reuse their unpacked copy
    with pytest.raises(RuntimeError, match="install the same looplab"):
        evaluate_bundle(data, digest, "matmul", NAIVE, ["n96"], 1, False, "0.0.0-other")


def test_worker_function_evaluates_without_ray(experiment: Experiment) -> None:
    data, digest = pack(experiment.root)
    result = evaluate_bundle(data, digest, "matmul", WRONG, ["n96"], 5, False, __import__("looplab").__version__)
    assert result.evaluation.failure is Outcome.INVALID and result.pid == os.getpid()
    assert (cache_root() / digest / "matmul" / "harness" / "bench.c").is_file()
    stale, fresh = cache_root() / "stale-bundle", cache_root() / digest
    stale.mkdir()
    os.utime(stale, (1, 1))
    os.utime(fresh, (1, 1))
    shutil.rmtree(fresh / "matmul")  # a new bundle to unpack: old unused ones are pruned on the way
    evaluate_bundle(data, digest, "matmul", NAIVE, ["n96"], 5, True, __import__("looplab").__version__)
    assert not stale.exists() and (fresh / "matmul" / "naive.c").is_file()


def test_evaluations_run_on_ray_workers(executor: RayExecutor, experiment: Experiment) -> None:
    async def three():
        return await asyncio.gather(*(executor.evaluate(src, experiment.search_cases, seed=11)
                                      for src in (NAIVE, WRONG, BROKEN)))

    good, wrong, broken = run(three())
    assert good.ok and set(good.cases) == {"n96", "n128", "n160"} and good.seed == 11
    assert all(len(c.samples) >= 3 for c in good.cases.values())
    # The candidate's own failures stay the candidate's: not infra errors.
    assert wrong.failure is Outcome.INVALID and "wrong" in wrong.reason
    assert broken.failure is Outcome.COMPILE_ERROR
    assert {p.pid for p in executor.placements} and os.getpid() not in {p.pid for p in executor.placements}
    unpacked = cache_root() / executor.digest / "matmul"
    assert (unpacked / "naive.c").is_file() and not (unpacked / "runs").exists() and not (unpacked / "winners").exists()
    assert executor.infra_failures == []


def test_judge_accepts_a_real_improvement_with_timing_on_one_node(executor: RayExecutor, experiment: Experiment) -> None:
    before = len(executor.placements)
    verdict = run(judge(experiment, executor, candidate_source=IKJ, incumbent_source=SLOW, best_case_medians={}))
    assert verdict.decision.outcome is Outcome.ACCEPTED, verdict.decision.reason
    assert verdict.decision.speedup > 1.0 and verdict.holdout is not None and verdict.holdout.ok
    timed = [p for p in executor.placements[before:] if p.timing]
    assert len(timed) >= 2 * verdict.decision.rounds and len({p.node for p in timed}) == 1
    assert executor.timing_node == timed[0].node


def test_timing_runs_never_overlap_on_a_node(cluster, experiment: Experiment) -> None:
    a, b = RayExecutor(experiment), RayExecutor(experiment)  # two loops sharing the node

    async def together():
        runs = [ex.evaluate(NAIVE, ["n96", "n128"], seed=s, timed=True) for s in range(3) for ex in (a, b)]
        return await asyncio.gather(*runs)

    assert all(ev.ok for ev in run(together()))
    windows = sorted((p.timed_from, p.timed_until) for p in a.placements + b.placements)
    assert len(windows) == 6
    for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
        assert end <= start  # one measurement at a time on the node


def _worker_running_our_task(exclude: set[int]) -> int | None:
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        if cmdline.startswith(TASK_TITLE) and children and int(pid) not in exclude:
            return int(pid)  # a worker in our task with the build or the harness under way
    return None


async def _evaluate_killing(executor: RayExecutor, source: str, kills: int, **kw) -> tuple:
    task = asyncio.ensure_future(executor.evaluate(source, ["n96"], **kw))
    killed: list[int] = []
    deadline = time.monotonic() + 120
    while len(killed) < kills and not task.done() and time.monotonic() < deadline:
        pid = _worker_running_our_task(set(killed))
        if pid is None:
            await asyncio.sleep(0.05)
            continue
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    return await task, killed


def test_worker_killed_mid_evaluation_is_retried_once(cluster, experiment: Experiment) -> None:
    executor = RayExecutor(experiment)
    ev, killed = run(_evaluate_killing(executor, SLEEPY, kills=1, seed=3))
    assert len(killed) == 1
    assert ev.ok and ev.seed == 3 and ev.cases["n96"].ok, ev.reason
    assert len(executor.infra_failures) == 1 and "retried" in ev.log
    assert len(executor.placements) == 1 and executor.placements[0].pid not in killed


def test_lost_twice_is_an_infra_error_never_a_candidate_failure(cluster, experiment: Experiment) -> None:
    executor = RayExecutor(experiment)
    ev, killed = run(_evaluate_killing(executor, SLEEPY, kills=2, timed=True))
    assert len(killed) == 2
    assert not ev.ok and ev.failure is Outcome.INFRA_ERROR
    assert "lost 2 times" in ev.reason and "then" in ev.reason
    assert executor.placements == [] and executor.timing_node is None


def test_resources_are_requested_and_checked(cluster, experiment: Experiment) -> None:
    slot = RayExecutor(experiment, resources=ResourcesConfig(num_cpus=0.5, custom={"looplab_test_slot": 1}))
    ev = run(slot.evaluate(NAIVE, ["n96"]))
    assert ev.ok and slot.placements[0].assigned == {"CPU": 0.5, "looplab_test_slot": 1.0}
    with pytest.raises(UserError, match="field 'resources'.*looplab_test_slot"):
        RayExecutor(experiment, resources=ResourcesConfig(custom={"fpga": 1}))
    with pytest.raises(UserError, match="field 'resources'"):
        RayExecutor(experiment, resources=ResourcesConfig(num_gpus=1))
    with pytest.raises(ValueError, match="not a custom resource"):
        ResourcesConfig(custom={"GPU": 1})


def test_make_executor(experiment: Experiment) -> None:
    assert type(make_executor(experiment)) is Evaluator
    with pytest.raises(UserError, match="--executor nope: unknown executor"):
        make_executor(experiment, "nope")


def test_a_short_search_runs_on_the_cluster(cluster, tmp_path: Path) -> None:
    import json

    from eval_helpers import FAST_MATMUL

    from looplab.loop import RunOptions, run_search
    from looplab.models.replay import ReplayProvider
    from looplab.report.progress import LineProgress
    from looplab.store import Store

    root = tmp_path / "matmul"
    shutil.copytree(FIXTURE, root)
    exp = load_experiment(root)
    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(json.dumps({"content": f"Strategy: {s}\n\n```c\n{code}```\n"}) + "\n"
                               for s, code in (("typo", BROKEN), ("halve", WRONG), ("vectors", FAST_MATMUL))))
    log = io.StringIO()
    summary = run(run_search(exp, ReplayProvider(replies), RunOptions(loop=3, executor="ray"), LineProgress(log)))
    assert summary.attempts == [1, 2, 3], log.getvalue()
    with Store(exp.store_path) as s:
        assert s.outcome_counts() == {"compile_error": 1, "invalid": 1, "accepted": 1}
        assert s.incumbent().id == 3 and s.incumbent().commit
    # Builds and runs happened on the Ray workers, from the shipped bundle, not in the local build cache.
    assert not (exp.state_dir / "build").exists()
    assert any(cache_root().glob("*/matmul/experiment.toml"))
