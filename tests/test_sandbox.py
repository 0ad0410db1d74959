"""The sandbox with real processes: group kill, limits, scrubbed env, no network, private filesystem.

Most tests run under both protections: bubblewrap and the degraded rlimits mode (LOOPLAB_SANDBOX=rlimits).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import sys
from pathlib import Path

import pytest
from eval_helpers import private_dir

from looplab.config import LimitsConfig
from looplab.errors import UserError
from looplab.sandbox import command as sandbox
from looplab.sandbox.command import protection, run_sandboxed, scrub_secrets
from looplab.sandbox.timing_lock import timing_cpu

ROOT = os.geteuid() == 0
HAVE_BWRAP = sandbox._bwrap_status()[0]
MODES = ["bwrap", "rlimits"] if HAVE_BWRAP else ["rlimits"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(sandbox.MODE_ENV, request.param)
    return request.param


@pytest.fixture
def work() -> Path:
    d = private_dir()
    yield d / "work"
    shutil.rmtree(d, ignore_errors=True)


def _python() -> str:
    """An interpreter the unprivileged sandbox uid can reach in either mode."""
    exe = Path(os.path.realpath(sys.executable))  # a venv's python links to the real one
    if all(os.stat(p).st_mode & 0o001 for p in exe.parents if p.exists()):
        return str(exe)
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3"
    pytest.skip("no python reachable by an unprivileged uid")


def run(argv: list[str], work: Path, *, timeout: float = 20, **limits: int) -> sandbox.SandboxResult:
    lim = LimitsConfig(**{"cpu_s": 20, "memory_mb": 512, "max_procs": 16, "output_kb": 64, **limits})
    return asyncio.run(run_sandboxed(argv, workdir=work, readonly=[], timeout_s=timeout, limits=lim))


def _processes_with(marker: str) -> list[str]:
    found = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and marker in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace"):
                found.append(p)
        except OSError:
            pass
    return found


def test_protection_names_the_active_mode(mode: str) -> None:
    text = protection()
    if mode == "bwrap":
        assert text.startswith("bubblewrap: no network, private filesystem")
    else:
        assert "rlimits + process-group kill + scrubbed env" in text and "NOT isolated" in text
        assert f"{sandbox.MODE_ENV}=rlimits" in text


def test_unknown_mode_and_missing_bwrap_are_user_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(sandbox.MODE_ENV, "docker")
    with pytest.raises(UserError, match="unknown sandbox mode"):
        protection()
    monkeypatch.setenv(sandbox.MODE_ENV, "bwrap")
    monkeypatch.setenv("PATH", str(tmp_path))
    sandbox._bwrap_status.cache_clear()
    try:
        with pytest.raises(UserError, match="install bubblewrap"):
            protection()
        monkeypatch.delenv(sandbox.MODE_ENV)
        assert "bwrap not found: install bubblewrap" in protection()  # auto mode degrades and says why
    finally:
        monkeypatch.undo()
        sandbox._bwrap_status.cache_clear()


def test_environment_is_scrubbed(mode: str, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-test" + secrets.token_hex(16)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok" + secrets.token_hex(8))
    res = run(["/bin/sh", "-c", "env; echo $OPENAI_API_KEY >&2"], work)
    assert res.returncode == 0
    env = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    assert "OPENAI_API_KEY" not in env and "MY_SERVICE_TOKEN" not in env
    assert env["HOME"] == str(work.resolve())
    assert key not in res.stdout + res.stderr


@pytest.mark.skipif(not ROOT, reason="only root switches to a throw-away uid")
def test_root_runs_candidates_unprivileged(mode: str, work: Path) -> None:
    res = run(["/bin/sh", "-c", "id -u; grep CapEff /proc/self/status"], work)
    uid, caps = res.stdout.split("\n")[:2]
    assert int(uid) != 0 and caps.split()[1] == "0000000000000000"
    assert os.stat(work).st_uid == 0  # the workdir is handed back afterwards


def test_timeout_kills_the_whole_group(mode: str, work: Path) -> None:
    marker = f"{secrets.randbelow(10**6) + 10**6}.25"
    escape = f"setsid sleep {marker} &"  # leaves the group: caught by pid namespace, uid or run mark
    res = run(["/bin/sh", "-c", f"sleep {marker} & sleep {marker} & {escape} sleep {marker}"], work, timeout=1)
    assert res.timed_out and res.signal == 9
    assert _processes_with(marker) == []


def test_rlimits_mode_without_root_still_kills_setsid_escapes(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not root: no pid namespace and no throw-away uid to find escaped processes by; the run's mark finds them.
    monkeypatch.setenv(sandbox.MODE_ENV, "rlimits")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    hung, done = (f"{secrets.randbelow(10**6) + 10**6}.5{k}" for k in range(2))
    res = run(["/bin/sh", "-c", f"setsid sleep {hung} & sleep {hung}"], work, timeout=1)
    assert res.timed_out and _processes_with(hung) == []
    res = run(["/bin/sh", "-c", f"setsid sleep {done} & echo left one behind"], work)
    assert res.returncode == 0 and not res.timed_out and _processes_with(done) == []


def test_process_count_is_limited(mode: str, work: Path) -> None:
    code = ("import os, time\nn = 0\ntry:\n    for _ in range(200):\n        if os.fork() == 0:\n"
            "            time.sleep(5); os._exit(0)\n        n += 1\nexcept OSError:\n    pass\nprint(n)")
    res = run([_python(), "-c", code], work, max_procs=8)
    assert 0 < int(res.stdout.strip()) <= 8


def test_memory_limit(mode: str, work: Path) -> None:
    res = run([_python(), "-c", "x = bytearray(600 * 1024 * 1024)"], work, memory_mb=256)
    assert res.returncode != 0 and res.limit_hit == "memory"


def test_cpu_limit(mode: str, work: Path) -> None:
    res = run(["/bin/sh", "-c", "while :; do :; done"], work, timeout=60, cpu_s=1)
    assert not res.timed_out and res.limit_hit == "cpu"


def test_file_size_limit(mode: str, work: Path) -> None:
    res = run(["/bin/sh", "-c", "head -c 4000000 /dev/zero > big"], work, file_mb=1)
    assert res.limit_hit == "file size" and (work / "big").stat().st_size <= 1024 * 1024


@pytest.mark.parametrize("command", ["yes fake result line", "head -c 3000000 /dev/zero; sleep 60"])
def test_output_flood_is_cut_off(mode: str, work: Path, command: str) -> None:
    # The second floods far past every buffer and then idles: the flood must end the run, not the timeout.
    res = run(["/bin/sh", "-c", command], work, timeout=45, output_kb=16)
    assert res.output_truncated and res.limit_hit == "output" and not res.timed_out
    assert len(res.stdout) <= 16 * 1024


def test_timing_runs_are_pinned(mode: str, work: Path) -> None:
    cpu = timing_cpu()
    lim = LimitsConfig()
    res = asyncio.run(run_sandboxed(["grep", "Cpus_allowed_list", "/proc/self/status"], workdir=work,
                                    readonly=[], timeout_s=20, limits=lim, pin_cpu=cpu))
    assert res.stdout.split()[-1] == str(cpu)


def test_missing_program_is_an_infra_error(mode: str, work: Path) -> None:
    res = run(["no-such-program-here"], work)
    assert res.infra_error and "cannot run no-such-program-here" in res.infra_error


@pytest.mark.skipif(not HAVE_BWRAP, reason="needs bubblewrap")
def test_network_is_cut(monkeypatch: pytest.MonkeyPatch, work: Path) -> None:
    monkeypatch.setenv(sandbox.MODE_ENV, "bwrap")
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')\nprint('sent')"
        res = run([_python(), "-c", code], work)
        assert res.returncode != 0 and "sent" not in res.stdout
        with pytest.raises(BlockingIOError):
            server.accept()


@pytest.mark.skipif(not HAVE_BWRAP, reason="needs bubblewrap")
def test_filesystem_is_private(monkeypatch: pytest.MonkeyPatch, work: Path) -> None:
    monkeypatch.setenv(sandbox.MODE_ENV, "bwrap")
    token = secrets.token_hex(6)
    outside = [Path("/tmp") / f"looplab-{token}", Path.home() / f"looplab-{token}"]
    ro = work.parent / "ro"
    (ro / "state").mkdir(parents=True)
    (ro / "visible.txt").write_text("ok")
    (ro / "state" / "secret.db").write_text("holdout names")
    (ro / "SCORES.md").write_text("holdout names")
    script = "; ".join(f"echo x > {p}" for p in outside) + f"; echo x > {ro}/new; cat {ro}/visible.txt; " \
             f"ls {ro}/state; cat {ro}/SCORES.md; echo kept > here.txt"
    lim = LimitsConfig()
    res = asyncio.run(run_sandboxed(["/bin/sh", "-c", script], workdir=work, readonly=[ro], timeout_s=20,
                                    limits=lim, hidden=[ro / "state", ro / "SCORES.md", ro / "absent"]))
    assert res.stdout.split() == ["ok"]  # readable; the hidden folder is empty, the hidden file too
    assert not any(p.exists() for p in outside) and not (ro / "new").exists()
    assert (work / "here.txt").read_text() == "kept\n"


def _rewrite(path: Path, text: str) -> None:
    """What looplab does to SCORES.json after every attempt: write aside, rename over (filesets.write_atomic)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.mark.skipif(not HAVE_BWRAP, reason="needs bubblewrap")
def test_a_hidden_file_rewritten_while_the_sandbox_runs_stays_hidden(monkeypatch: pytest.MonkeyPatch,
                                                                      work: Path) -> None:
    monkeypatch.setenv(sandbox.MODE_ENV, "bwrap")
    ro = work.parent / "exp"
    ro.mkdir()
    (ro / "visible.txt").write_text("ok\n")
    (ro / "SCORES.json").write_text("holdout names\n")
    go = work / "go"
    script = f"cat {ro}/SCORES.json; while [ ! -e {go} ]; do sleep 0.02; done; cat {ro}/SCORES.json {ro}/visible.txt"

    async def scenario() -> sandbox.SandboxResult:
        task = asyncio.ensure_future(run_sandboxed(["/bin/sh", "-c", script], workdir=work, readonly=[ro],
                                                   timeout_s=20, limits=LimitsConfig(),
                                                   hidden=[ro / "SCORES.json"]))
        await asyncio.sleep(0.5)  # the sandbox is up and has read the file once
        _rewrite(ro / "SCORES.json", "new holdout names\n")  # the rename used to unbind the empty file
        go.write_text("")
        return await task

    res = asyncio.run(scenario())
    assert res.stdout.split() == ["ok"] and res.infra_error is None, res.stderr


@pytest.mark.skipif(not HAVE_BWRAP, reason="needs bubblewrap")
def test_sandboxes_start_cleanly_while_hidden_files_are_rewritten(monkeypatch: pytest.MonkeyPatch,
                                                                  work: Path) -> None:
    monkeypatch.setenv(sandbox.MODE_ENV, "bwrap")
    ro = work.parent / "exp"
    ro.mkdir()
    hidden = [ro / n for n in ("SCORES.json", "SCORES.md", "MEMORY.json")]
    for h in hidden:
        h.write_text("holdout names\n")

    async def scenario() -> list[sandbox.SandboxResult]:
        stop = asyncio.Event()

        async def rewrite() -> None:
            while not stop.is_set():
                for h in hidden:
                    await asyncio.to_thread(_rewrite, h, "holdout names again\n")

        writer = asyncio.ensure_future(rewrite())
        results = []
        for _ in range(25):
            results.append(await run_sandboxed(["/bin/sh", "-c", f"cat {ro}/SCORES.json; ls {ro}"], workdir=work,
                                               readonly=[ro], timeout_s=20, limits=LimitsConfig(),
                                               hidden=hidden))
        stop.set()
        await writer
        return results

    for res in asyncio.run(scenario()):
        assert res.infra_error is None and res.returncode == 0, res.stderr
        assert "holdout" not in res.stdout and ".tmp" not in res.stdout  # nor a half-written temporary


@pytest.mark.skipif(not ROOT, reason="only root switches uid without bubblewrap")
def test_degraded_root_refuses_paths_the_sandbox_uid_cannot_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sandbox.MODE_ENV, "rlimits")
    d = private_dir()
    try:
        os.chmod(d, 0o700)
        with pytest.raises(UserError, match="not reachable by the unprivileged sandbox user"):
            run(["true"], d / "work")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("text", [
    "key sk-proj-abcdefghijklmnop1234 end", "ghp_abcdefghijklmnopqrstuvwxyz0123", "id AKIAABCDEFGHIJKLMNOP",
    "Authorization: Bearer abcdefghijklmnopqrstuvwx", "hf_abcdefghijklmnopqrstuvwxyzABCDEF",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
])
def test_scrub_secrets_patterns(text: str) -> None:
    out = scrub_secrets(text)
    assert "[REDACTED]" in out and len(out) < len(text) + 10
    assert not any(tok in out for tok in ("sk-proj", "ghp_a", "AKIAA", "abcdefghijklmnopqrstuvwx", "MIIEow"))


def test_scrub_secrets_env_values_and_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "plainvalue12345")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to redact safely
    assert scrub_secrets("got plainvalue12345!") == "got [REDACTED]!"
    assert scrub_secrets("c[3][5]=0.5, expected 1 abc") == "c[3][5]=0.5, expected 1 abc"
