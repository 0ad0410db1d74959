"""Run one command isolated: no network, scrubbed env, private filesystem, rlimits, timeout, group kill.

Every build and every run of candidate code goes through run_sandboxed(). With bubblewrap (`bwrap`)
the command sees a read-only system, the read-only paths it was given, one writable working directory,
a private /tmp and no network. Without it (or with LOOPLAB_SANDBOX=rlimits) it degrades to rlimits,
a process-group kill and a scrubbed environment; protection() says which is active.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from looplab.config import LimitsConfig
from looplab.errors import UserError
from looplab.sandbox.mounts import bwrap_argv
from looplab.scrub import scrub_secrets  # also part of this module's public API

MODE_ENV = "LOOPLAB_SANDBOX"  # "bwrap", "rlimits" or unset (auto)
RUN_MARK_ENV = "LOOPLAB_SANDBOX_RUN"  # rlimits mode without root: marks a run's processes for the sweep

# Variables a build or a harness may need; everything else (API keys, tokens) stays out.
ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SOURCE_DATE_EPOCH")

# Runs inside the sandbox right before the command: limits, cpu pin, unprivileged uid, exec.
_LAUNCHER = r"""
import os, resource as r, signal, sys
# Python ignores these at startup and exec would pass that on: the command gets the defaults back.
for s in (signal.SIGPIPE, signal.SIGXFSZ):
    signal.signal(s, signal.SIG_DFL)
cpu, mem, fsize, nofile, nproc, uid, pin = (int(x) for x in sys.argv[1:8])
r.setrlimit(r.RLIMIT_CORE, (0, 0))
r.setrlimit(r.RLIMIT_CPU, (cpu, cpu + 1))
r.setrlimit(r.RLIMIT_AS, (mem, mem))
r.setrlimit(r.RLIMIT_FSIZE, (fsize, fsize))
r.setrlimit(r.RLIMIT_NOFILE, (nofile, nofile))
if pin >= 0:
    os.sched_setaffinity(0, {pin})
if uid >= 0:
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
me = os.getuid()
def mine(p):
    try:
        return os.stat("/proc/" + p).st_uid == me
    except OSError:
        return False
# RLIMIT_NPROC counts every process of the uid, so allow max_procs beyond those already running.
n = sum(1 for p in os.listdir("/proc") if p.isdigit() and mine(p))
r.setrlimit(r.RLIMIT_NPROC, (n + nproc, n + nproc))
os.umask(0o022)
prog = sys.argv[8]
if "/" not in prog:  # resolve here: execvp would import modules the new uid may not be able to read
    dirs = os.environ.get("PATH", "/usr/bin:/bin").split(":")
    prog = next((os.path.join(d, prog) for d in dirs if os.access(os.path.join(d, prog), os.X_OK)), prog)
try:
    os.execv(prog, sys.argv[8:])
except OSError as e:
    sys.stderr.write("looplab sandbox: cannot run %s: %s\n" % (sys.argv[8], e.strerror))
    os._exit(127)
"""


@dataclass
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str  # scrubbed of secrets
    timed_out: bool
    wall_s: float
    signal: int | None  # the signal that ended the command, if any
    output_truncated: bool  # stdout or stderr went over limits.output_kb: the command was cut off
    limit_hit: str | None  # "cpu", "memory", "file size", "processes", "output" (best effort)
    infra_error: str | None = None  # the sandbox itself failed (not the command)


def _requested_mode() -> str:
    want = os.environ.get(MODE_ENV, "").strip().lower()
    if want not in ("", "auto", "bwrap", "rlimits"):
        raise UserError(f"{MODE_ENV}={want!r}: unknown sandbox mode (fix: use bwrap, rlimits or unset it)")
    return want


@functools.lru_cache(maxsize=1)
def _bwrap_status() -> tuple[bool, str]:
    """(usable, why not) — bwrap can be installed but refused user namespaces by the kernel."""
    exe = shutil.which("bwrap")
    if not exe:
        return False, "bwrap not found: install bubblewrap"
    try:
        p = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-net", "--die-with-parent", "true"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"bwrap is not usable here ({e})"
    if p.returncode != 0:
        return False, f"bwrap is not usable here ({p.stderr.strip()[:120]})"
    return True, ""


def mode() -> str:
    """The active protection: "bwrap" or "rlimits"."""
    want = _requested_mode()
    if want == "rlimits":
        return "rlimits"
    ok, why = _bwrap_status()
    if want == "bwrap" and not ok:
        raise UserError(f"{MODE_ENV}=bwrap but {why} (fix: install bubblewrap or unset {MODE_ENV})")
    return "bwrap" if ok else "rlimits"


def protection() -> str:
    """One line for `looplab status` and the README: which protection candidate code runs under."""
    active = mode()
    root = ", runs as a throw-away unprivileged uid" if os.geteuid() == 0 else ""
    if active == "bwrap":
        return ("bubblewrap: no network, private filesystem (read-only system, private /tmp), "
                f"scrubbed env, rlimits, process-group kill{root}")
    why = f"forced by {MODE_ENV}=rlimits" if _requested_mode() == "rlimits" else _bwrap_status()[1]
    return (f"rlimits + process-group kill + scrubbed env{root} ({why}); "
            "network and filesystem are NOT isolated")


def scrubbed_env(workdir: Path, tmpdir: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update(HOME=str(workdir), TMPDIR=tmpdir, PWD=str(workdir))
    return env


# --- running ---------------------------------------------------------------------------------------

def throwaway_uid() -> int:
    # A fresh uid per run: RLIMIT_NPROC then counts only this run's processes, and none is root's.
    return 2_100_000_000 + secrets.randbelow(40_000_000)


def _check_reachable(paths: Sequence[Path]) -> None:
    """Without bwrap, the unprivileged uid must be able to walk to every path it is given."""
    for p in {q for path in paths for q in (Path(path), Path(os.path.realpath(path)))}:  # a venv's python is a link
        for d in [p, *p.parents]:
            if d.exists() and not os.stat(d).st_mode & 0o001:
                raise UserError(
                    f"sandbox: {d} is not reachable by the unprivileged sandbox user "
                    "(fix: install bubblewrap, run looplab as a normal user, or `chmod o+x` that folder)")


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            try:
                os.lchown(os.path.join(dirpath, name), uid, gid)
            except OSError:
                pass
    os.lchown(root, uid, gid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _sweep(belongs: Callable[[str], bool]) -> None:
    """SIGKILL every process (by /proc entry) that belongs to the run, until none is left."""
    for _ in range(5):
        found = False
        for p in os.listdir("/proc"):
            try:
                if p.isdigit() and int(p) != os.getpid() and belongs(p):
                    os.kill(int(p), signal.SIGKILL)
                    found = True
            except OSError:
                pass  # gone meanwhile, or not ours to read (then not the run's either)
        if not found:
            return
        time.sleep(0.01)


def kill_uid(uid: int) -> None:
    """Kill every process of a throw-away uid (catches children that left the process group)."""
    _sweep(lambda p: os.stat(f"/proc/{p}").st_uid == uid)


def _kill_marked(token: str) -> None:
    """Kill every process whose environment carries this run's mark (catches setsid escapes when
    there is neither a pid namespace nor a throw-away uid to find them by)."""
    mark = f"{RUN_MARK_ENV}={token}".encode()
    _sweep(lambda p: mark in Path(f"/proc/{p}/environ").read_bytes().split(b"\0"))


def _signal_of(rc: int | None) -> int | None:
    if rc is None:
        return None
    if rc < 0:
        return -rc
    # bwrap and sh report a child killed by signal N as exit status 128+N.
    if 128 < rc < 128 + 65:
        return rc - 128
    return None


_MEMORY_HINTS = ("Cannot allocate memory", "bad_alloc", "MemoryError", "out of memory")


def _limit_hit(sig: int | None, truncated: bool, stderr: str) -> str | None:
    if truncated:
        return "output"
    if sig == signal.SIGXCPU:
        return "cpu"
    if sig == signal.SIGXFSZ:
        return "file size"
    if "File too large" in stderr:
        return "file size"
    if any(h in stderr for h in _MEMORY_HINTS):
        return "memory"
    if "Resource temporarily unavailable" in stderr:
        return "processes"
    return None


def start_reader(fd: int, buf: bytearray, cap: int, flood: asyncio.Event) -> asyncio.Future:
    """Read fd until EOF, keeping at most cap bytes (beyond that: flood, and the rest is discarded)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            loop.remove_reader(fd)
            if not done.done():
                done.set_result(None)
            return
        room = cap - len(buf)
        buf.extend(chunk[:max(room, 0)])
        if len(chunk) > room:
            flood.set()

    loop.add_reader(fd, readable)
    return done


async def run_sandboxed(argv: list[str], *, workdir: Path, readonly: list[Path], timeout_s: float,
                        limits: LimitsConfig, pin_cpu: int | None = None,
                        hidden: Sequence[Path] = ()) -> SandboxResult:
    """Run argv with workdir as its only writable place; hidden dirs appear empty, hidden files as
    empty files (bwrap only)."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    active = mode()
    as_root = os.geteuid() == 0
    uid = throwaway_uid() if as_root else -1
    if as_root:
        if active == "rlimits":
            exe = [Path(argv[0])] if os.path.isabs(argv[0]) else []
            _check_reachable([workdir, *readonly, *exe])
        os.chown(workdir, uid, uid)
    mb = 1024 * 1024
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(limits.cpu_s), str(limits.memory_mb * mb),
                str(limits.file_mb * mb), str(limits.open_files), str(limits.max_procs), str(uid),
                str(-1 if pin_cpu is None else pin_cpu)]
    if active == "bwrap":
        full = bwrap_argv(workdir, [Path(p) for p in readonly], hidden, as_root) + launcher + list(argv)
        env = scrubbed_env(workdir, "/tmp")
    else:
        full = launcher + list(argv)
        env = scrubbed_env(workdir, str(workdir))
    mark = secrets.token_hex(8) if active == "rlimits" and uid < 0 else ""
    if mark:
        env[RUN_MARK_ENV] = mark
    cap = limits.output_kb * 1024
    out, err, flood = bytearray(), bytearray(), asyncio.Event()
    # Our own pipes, not asyncio's: wait() then returns when the process ends even if something it
    # left behind still holds the pipes (Python 3.11 waits for the pipes too).
    (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
    start = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *full, stdin=asyncio.subprocess.DEVNULL, stdout=out_w, stderr=err_w, cwd=workdir, env=env,
            start_new_session=True)
    except OSError as e:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        return SandboxResult(None, "", "", False, 0.0, None, False, None, infra_error=f"cannot start: {e}")
    os.close(out_w)
    os.close(err_w)
    loop = asyncio.get_running_loop()
    readers = [start_reader(out_r, out, cap, flood), start_reader(err_r, err, cap, flood)]
    try:
        waiter = asyncio.create_task(proc.wait())
        flooded = asyncio.create_task(flood.wait())
        try:
            done, _ = await asyncio.wait({waiter, flooded}, timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Whatever happened, nothing the command started outlives it.
            _kill_group(proc.pid)
            if uid >= 0:
                kill_uid(uid)
            if mark:
                _kill_marked(mark)
            flooded.cancel()
        timed_out = not done
        rc = await waiter
        wall = time.monotonic() - start
        # EOF comes once every holder of the pipes is gone; one that escaped the kill is not waited for.
        await asyncio.wait(readers, timeout=2.0)
    finally:
        for fd in (out_r, err_r):
            loop.remove_reader(fd)
            os.close(fd)
    if as_root:
        _chown_tree(workdir, os.getuid(), os.getgid())
    return result_of(rc, out, err, flood.is_set(), timed_out, wall)


def result_of(rc: int | None, out: bytes | bytearray, err: bytes | bytearray, truncated: bool, timed_out: bool,
              wall: float) -> SandboxResult:
    """A run's result from its exit status and output (shared by cold runs and looplab/sandbox/warm.py's)."""
    stdout = out.decode("utf-8", "replace")
    stderr = scrub_secrets(err.decode("utf-8", "replace"))
    sig = _signal_of(rc)
    infra = None
    first = stderr.lstrip().splitlines()[0] if stderr.strip() else ""
    if first.startswith(("bwrap:", "looplab sandbox:")) and not timed_out:
        infra = first
    return SandboxResult(returncode=rc, stdout=stdout, stderr=stderr, timed_out=timed_out, wall_s=wall,
                         signal=sig, output_truncated=truncated,
                         limit_hit=_limit_hit(sig, truncated, stderr), infra_error=infra)
