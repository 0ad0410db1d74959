"""Winners archive in real temporary git repositories (and outside git), find_winner, reset_live_state."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from looplab.archive.winners import archive_winner, find_winner, reset_live_state
from looplab.config import Experiment, load_experiment
from looplab.errors import UserError
from looplab.records import Evaluation, Outcome
from looplab.report.scores import write_all
from looplab.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"
WINNER = "void matmul(float* c, const float* a, const float* b, int n) { /* ikj */ }\n"


@pytest.fixture(autouse=True)
def no_git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where nobody configured git: no global/system config, no identity variables."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
    for var in ("EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)


def git(repo: Path, *args: str) -> str:
    r = subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=t@example.com", "-C", str(repo), *args],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root / "matmul")
    (root / "README.md").write_text("mine\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "initial")
    return root


def _state(exp: Experiment) -> None:
    """A store with a baseline and SCORES/MEMORY rendered from it, as the loop would leave them."""
    with Store(exp.store_path) as s:
        s.record_baseline(source=exp.baseline_source, evaluation=Evaluation(ok=True), metric=100.0)
        aid = s.begin_attempt(model="m")
        s.finish_attempt(aid, outcome=Outcome.ACCEPTED, strategy="ikj", metric=70.0)
        write_all(s, exp)


def test_archive_in_git_commits_only_looplab_paths(repo: Path) -> None:
    exp = load_experiment(repo / "matmul")
    _state(exp)
    (repo / "notes.txt").write_text("user's staged work\n")
    git(repo, "add", "notes.txt")
    (repo / "README.md").write_text("user's unstaged edit\n")

    h = archive_winner(exp, source=WINNER, attempt_id=1, message="looplab: accept #1 x1.43")

    assert git(repo, "log", "--format=%s").splitlines() == [
        f"looplab: archive winner {h} (attempt 1)", "looplab: accept #1 x1.43", "initial"]
    assert git(repo, "rev-parse", "--short", "HEAD~1") == h
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD~1").splitlines()) == [
        "matmul/MEMORY.json", "matmul/MEMORY.md", "matmul/SCORES.json", "matmul/SCORES.md", "matmul/incumbent.c"]
    assert git(repo, "show", "--name-only", "--format=", "HEAD").splitlines() == [f"matmul/winners/{h}.c"]
    assert git(repo, "show", f"HEAD:matmul/winners/{h}.c") + "\n" == WINNER
    assert (exp.winners_dir / f"{h}.c").read_text() == WINNER
    assert (exp.root / "incumbent.c").read_text() == WINNER
    # The user's work is exactly as it was: staged file still staged and uncommitted, edit unstaged.
    assert git(repo, "diff", "--cached", "--name-only") == "notes.txt"
    assert git(repo, "diff", "--name-only") == "README.md"
    assert git(repo, "log", "--all", "--format=%h", "--", "notes.txt") == ""
    assert ".looplab" not in git(repo, "ls-files")
    assert git(repo, "log", "-1", "--format=%an <%ae>") == "looplab <looplab@localhost>"


def test_second_winner_and_configured_identity_kept(repo: Path) -> None:
    git(repo, "config", "user.name", "Alice")
    git(repo, "config", "user.email", "alice@example.com")
    exp = load_experiment(repo / "matmul")
    h1 = archive_winner(exp, source=WINNER, attempt_id=1, message="first")
    h2 = archive_winner(exp, source=WINNER.replace("ikj", "blocked"), attempt_id=4, message="second")
    assert h1 != h2
    assert git(repo, "show", f"{h2}:matmul/incumbent.c").count("blocked") == 1
    assert sorted(p.name for p in exp.winners_dir.iterdir()) == sorted([f"{h1}.c", f"{h2}.c"])
    assert set(git(repo, "log", "--format=%an <%ae>").splitlines()) == {
        "Alice <alice@example.com>", "Test <t@example.com>"}


def test_archive_outside_git(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "plain")
    exp = load_experiment(tmp_path / "plain")
    assert subprocess.run(["git", "-C", str(exp.root), "rev-parse"], capture_output=True).returncode != 0
    h = archive_winner(exp, source=WINNER, attempt_id=2, message="ignored")
    assert h == hashlib.sha256(WINNER.encode()).hexdigest()[:12]
    assert (exp.winners_dir / f"{h}.c").read_text() == WINNER
    assert (exp.root / "incumbent.c").read_text() == WINNER
    assert not (exp.root / ".git").exists()


def test_archive_when_git_ignores_the_experiment(repo: Path) -> None:
    (repo / ".gitignore").write_text("matmul/incumbent.c\nmatmul/SCORES.*\nmatmul/MEMORY.*\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore")
    exp = load_experiment(repo / "matmul")
    h = archive_winner(exp, source=WINNER, attempt_id=1, message="nope")
    assert h == hashlib.sha256(WINNER.encode()).hexdigest()[:12]
    assert git(repo, "log", "--format=%s").splitlines() == ["ignore", "initial"]


def test_find_winner(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "m")
    exp = load_experiment(tmp_path / "m")
    with pytest.raises(UserError, match="no winners archived yet"):
        find_winner(exp, "abc")
    exp.winners_dir.mkdir()
    for name in ("abc1234", "abd9999", "ff00aa1"):
        (exp.winners_dir / f"{name}.c").write_text(name)
    assert find_winner(exp, "abc1234").name == "abc1234.c"
    assert find_winner(exp, "FF0").name == "ff00aa1.c"
    assert find_winner(exp, "winners/abd9999.c").name == "abd9999.c"
    with pytest.raises(UserError, match=r"ambiguous, matches abc1234, abd9999 \(fix: give more"):
        find_winner(exp, "ab")
    with pytest.raises(UserError, match=r"no such winner .*\(fix: use one of: .*abc1234.*ff00aa1"):
        find_winner(exp, "0123")


def test_reset_live_state_keeps_winners_and_history(repo: Path) -> None:
    exp = load_experiment(repo / "matmul")
    _state(exp)
    h = archive_winner(exp, source=WINNER, attempt_id=1, message="accept")
    (exp.runs_dir / "1").mkdir(parents=True)
    (exp.runs_dir / "1" / "prompt.md").write_text("p")
    (exp.root / "report.html").write_text("<html>")
    with Store(exp.store_path) as s:  # leave -wal/-shm around like a running loop would
        s.set_meta("k", "v")
        removed = reset_live_state(exp)
    names = {p.name for p in removed}
    assert {"looplab.db", "runs", "SCORES.md", "SCORES.json", "MEMORY.md", "MEMORY.json", "report.html",
            "incumbent.c"} <= names
    assert not exp.store_path.exists() and not exp.runs_dir.exists()
    assert not any((exp.root / n).exists() for n in ("SCORES.md", "MEMORY.json", "report.html"))
    assert (exp.root / "incumbent.c").read_text() == exp.baseline_source
    assert (exp.winners_dir / f"{h}.c").read_text() == WINNER
    assert len(git(repo, "log", "--format=%h").splitlines()) == 3
    with Store(exp.store_path) as s:
        assert s.attempts() == [] and s.begin_attempt(model="m") == 1
