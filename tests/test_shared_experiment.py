"""Three loop processes share one experiment (SQLite file, then a real PostgreSQL server).

Each process runs the acceptance protocol the loop uses: judge against the incumbent it saw, then
under store.acceptance_lock() re-read the incumbent, judge again if it changed, archive + commit
(real git) and record. Afterwards: ids unique and complete, every attempt once, the incumbent
history one consistent chain, every winner committed exactly once, no live loop's row interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from postgres_server import PostgresServer, find_or_install

from looplab.config import Experiment, load_experiment
from looplab.records import CaseResult, Evaluation, Outcome
from looplab.store import open_store

pytestmark = pytest.mark.slow  # real processes, real git, a real PostgreSQL server

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "matmul"
LOOPS, ATTEMPTS = 3, 8

# One loop: the metric stands in for a measurement; the sleeps make the loops' critical sections
# overlap in time, so without the lock two loops would accept against the same incumbent.
LOOP = """
import json, random, sys, time
from looplab.archive import winners as archive
from looplab.config import load_experiment
from looplab.records import Outcome
from looplab.store import open_store

exp = load_experiment(sys.argv[1])
store = open_store(exp, sys.argv[2] or None)
rng = random.Random(int(sys.argv[3]))
interrupted = []
for _ in range(int(sys.argv[4])):
    interrupted += store.mark_interrupted()  # as a loop (re)starting at any moment would
    seen = store.incumbent()
    aid = store.begin_attempt(model="loop" + sys.argv[3], parent_id=seen.id)
    metric = rng.uniform(0.0, 100.0)
    time.sleep(rng.uniform(0.0, 0.05))  # judged outside the lock: others may accept meanwhile
    if metric >= seen.metric:
        store.finish_attempt(aid, outcome=Outcome.SLOWER, metric=metric, details={"judged_against": seen.id})
        continue
    with store.acceptance_lock():
        current = store.incumbent()
        better = metric < current.metric  # judged again when the incumbent changed meanwhile
        time.sleep(0.02)
        commit = None
        if better:
            commit = archive.archive_winner(exp, source=f"// attempt {aid}: {metric}\\n", attempt_id=aid,
                                            message=f"looplab: attempt {aid}: new best")
        store.finish_attempt(aid, outcome=Outcome.ACCEPTED if better else Outcome.SLOWER, metric=metric,
                             commit=commit, details={"judged_against": current.id})
print(json.dumps({"interrupted": interrupted}))
"""


@pytest.fixture(scope="module")
def pg_url() -> str:
    pytest.importorskip("psycopg", reason="psycopg is not installed (fix: pip install 'looplab[postgres]')")
    bin_dir, why = find_or_install()
    if bin_dir is None:
        pytest.skip(why)
    server = PostgresServer(bin_dir).start()
    yield server.url
    server.stop()


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def _experiment(tmp_path: Path, name: str) -> Experiment:
    repo = tmp_path / "work"
    shutil.copytree(FIXTURE, repo / "matmul")
    toml = repo / "matmul" / "experiment.toml"
    toml.write_text(toml.read_text().replace('name = "matmul"', f'name = "{name}"'))
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "initial")
    return load_experiment(repo / "matmul")


def _share(experiment: Experiment, url: str) -> None:
    with open_store(experiment, url or None) as store:
        baseline = Evaluation(ok=True, cases={"n96": CaseResult("n96", True, [100.0])})
        store.record_baseline(source=experiment.baseline_source, evaluation=baseline, metric=100.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", LOOP, str(experiment.root), url, str(seed), str(ATTEMPTS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for seed in range(LOOPS)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"interrupted": []}  # no live loop's row

    with open_store(experiment, url or None) as store:
        rows = store.attempts()
        assert [r.id for r in rows] == list(range(LOOPS * ATTEMPTS + 1))  # unique, no gaps, each once
        assert all(r.outcome in (Outcome.BASELINE, Outcome.ACCEPTED, Outcome.SLOWER) for r in rows)
        by_loop = {}
        for r in rows[1:]:
            by_loop.setdefault(r.model, set()).add(r.owner)
        assert sorted(by_loop) == [f"loop{i}" for i in range(LOOPS)]
        assert all(len(owners) == 1 for owners in by_loop.values())  # every row names its own loop

        # The incumbent history is one chain: each acceptance was judged against the previous one.
        accepted = sorted(store.attempts(outcomes=[Outcome.ACCEPTED]), key=lambda r: r.ended_at)
        assert accepted, "no loop accepted anything: the test proves nothing"
        chain = [0] + [r.id for r in accepted]
        assert [r.details["judged_against"] for r in accepted] == chain[:-1]
        metrics = [100.0] + [r.metric for r in accepted]
        assert metrics == sorted(metrics, reverse=True) and len(set(metrics)) == len(metrics)
        assert store.incumbent().id == chain[-1]

        # Each winner archived and committed exactly once.
        commits = [r.commit for r in accepted]
        assert all(commits) and len(set(commits)) == len(commits)
        assert {p.stem for p in experiment.winners_dir.iterdir()} == set(commits)
        log = _git(experiment.root.parent, "log", "--format=%s")
        for r in accepted:
            assert log.count(f"attempt {r.id}: new best") == 1
            assert log.count(f"archive winner {r.commit} (attempt {r.id})") == 1
        assert (experiment.root / "incumbent.c").read_text().startswith(f"// attempt {chain[-1]}:")


def test_three_loops_share_a_sqlite_store(tmp_path: Path) -> None:
    _share(_experiment(tmp_path, "matmul"), "")


def test_three_loops_share_a_postgres_store(tmp_path: Path, pg_url: str) -> None:
    _share(_experiment(tmp_path, "matmul_shared"), pg_url)
