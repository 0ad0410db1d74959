"""Warm sandboxes: evaluation hosts that start once and fork a fresh child per evaluation.

A cold run pays for bubblewrap, an interpreter and the evaluator's imports (numpy alone is 0.1-0.5 s)
every time. A WarmPool keeps hosts (looplab/sandbox/warm_host.py) running inside the same bubblewrap sandbox a
cold run gets — read-only system and experiment, looplab's own files hidden, no network, private /tmp
(here: not writable by the children at all) — and each evaluation is a child forked from a host that
never ran candidate code, with a cold run's protections: its own session and process group, rlimits,
a pinned core for timing, a fresh throw-away uid, a scrubbed environment and its private working
directory (the only place it can write, removed afterwards). When it ends, the host answers, then kills whatever
that uid still runs and removes its IPC objects before it takes another evaluation; looplab sweeps the uid once
more. A host serves one at a time; one that does not answer, dies or cannot clean up is killed and replaced.

Used for evaluator files (OpenEvolve/Shinka style, a Python runner) when bubblewrap is the active
protection and looplab runs as root (the throw-away uids need it); otherwise evaluations run cold.
LOOPLAB_WARM=0 turns it off.
"""

from __future__ import annotations

import ast
import asyncio
import collections
import concurrent.futures
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from looplab import harness
from looplab.config import LimitsConfig
from looplab.sandbox import command as sandbox
from looplab.sandbox.command import SandboxResult
from looplab.sandbox.mounts import bwrap_argv

WARM_ENV = "LOOPLAB_WARM"
HOST = Path(__file__).with_name("warm_host.py")
START_TIMEOUT_S = 60.0  # a host's imports (numpy, scipy, ...) on a loaded machine
REPLY_GRACE_S = 10.0  # after a kill, the host must report the child's end within this
JOBS_PER_HOST = 500  # then a fresh host: nothing accumulates, however well each child was cleaned
_RUNNER_IMPORTS = ["importlib.util", "json", "math", "threading", "traceback", "subprocess", "tempfile"]
# Off the evaluation's path: the next child's folder made ahead, a finished uid's last sweep.
_BACKGROUND = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="looplab-warm")


def available() -> bool:
    """Warm hosts can serve here: bubblewrap is active, looplab is root, and nobody turned them off."""
    if os.environ.get(WARM_ENV, "").strip().lower() in ("0", "off", "no", "false"):
        return False
    return os.geteuid() == 0 and sandbox.mode() == "bwrap"


def evaluator_imports(files: Sequence[Path], folder: Path, limit: int = 64) -> list[str]:
    """Installed modules the files import (anywhere in them), and their submodules they use as attributes
    (`np.random`: numpy.random, which numpy loads lazily), not the folder's own modules: what a host
    imports once so that no evaluation pays for it."""
    own = {p.stem for p in folder.iterdir()} if folder.is_dir() else set()
    names: list[str] = []
    for path in files:
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except (OSError, SyntaxError, ValueError):
            continue
        alias: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    names.append(a.name)
                    alias[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names += [node.module] + [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in alias:
                names.append(f"{alias[node.value.id]}.{node.attr}")
    return [n for n in dict.fromkeys(names) if n.split(".")[0] not in own][:limit]


def jobs_root(state_dir: Path) -> Path:
    """Where a pool's hosts keep their children's folders (on the disk, not in memory: a child that writes
    without end fills a disk, not the machine's memory)."""
    return state_dir / "warm"


class _NotTaken(Exception):
    """The host did not take the request (it is gone): nothing ran, so another host may run it."""


class HostGone(Exception):
    """A host died, did not answer in time or could not clean up after a child."""


class Host:
    """One bwrap sandbox running warm_host.py, and the folder its children work in."""

    def __init__(self, jobs: Path, sandbox_argv: list[str], imports: list[str], log: Path):
        self.jobs, self.log = jobs, log
        self.served = 0
        self.ready = False  # it said it has imported what it imports
        self.why = ""  # why it must be replaced (empty: it serves)
        self.next: tuple[Callable[[Path], None], concurrent.futures.Future] | None = None  # its next child's folder
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.setblocking(False)
        argv = [*sandbox_argv, sys.executable, "-I", str(HOST), str(theirs.fileno()), json.dumps(imports)]
        with open(log, "ab") as err:
            try:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                             env=sandbox.scrubbed_env(jobs, "/tmp"), cwd=jobs,
                                             pass_fds=(theirs.fileno(),), start_new_session=True)
            finally:
                theirs.close()

    async def receive(self, timeout_s: float) -> dict:
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout_s)
        except (TimeoutError, OSError) as e:
            raise HostGone(f"no answer from the warm host ({type(e).__name__})") from None
        if not data:
            raise HostGone("the warm host closed its socket")
        return json.loads(data)

    @property
    def broken(self) -> bool:
        return bool(self.why)

    def close(self) -> None:
        self.why = self.why or "closed"
        if self.next is not None:  # a next folder still being filled: done first, then removed with the rest
            concurrent.futures.wait([self.next[1]], timeout=30)
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # bwrap; its pid namespace dies with it
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        shutil.rmtree(self.jobs, ignore_errors=True)
        with contextlib.suppress(OSError):
            if not self.log.stat().st_size:
                self.log.unlink()


class WarmPool:
    """Warm hosts for one experiment's evaluator, started on demand, one evaluation per host at a time."""

    def __init__(self, root: Path, readonly: Sequence[Path], hidden: Sequence[Path], shadow: Sequence[Path],
                 imports: list[str]):
        self.root = root  # where hosts keep their children's folders (under the experiment's hidden state)
        # The host runs looplab's warm_host.py under this interpreter: both must be readable.
        self.readonly = list(dict.fromkeys([*readonly, *harness.python_paths()]))
        self.hidden, self.shadow = list(hidden), list(shadow)
        self.imports = list(dict.fromkeys(_RUNNER_IMPORTS + imports))
        self._idle: list[Host] = []
        self._all: set[Host] = set()
        self.started = 0  # hosts started (tests and benchmarks read it)
        self.dropped: list[str] = []  # why each host that is gone was replaced
        self.times: collections.deque = collections.deque(maxlen=1000)  # per evaluation: sent, host got it, handed to its child, child ended, answered, answer read
        self._sweeping: set[int] = set()  # uids whose last sweep runs in the background: not drawn again until done
        weakref.finalize(self, _close_all, self._all, self.root)

    def _start(self) -> Host:
        if not self.started:
            self._sweep()
        jobs = self.root / f"{os.getpid()}-{secrets.token_hex(6)}"
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        jobs.mkdir()
        os.chmod(jobs, 0o711)  # children reach their own folder by name; none can list the others
        argv = bwrap_argv(jobs, self.readonly, self.hidden, as_root=True, shadow=self.shadow)
        # Children get no /tmp to write to (it would outlive them): TMPDIR is their own folder.
        for i in range(len(argv) - 3):
            if argv[i:i + 4] == ["--perms", "1777", "--tmpfs", "/tmp"]:
                argv[i + 1] = "0755"
        host = Host(jobs, argv, self.imports, self.root / f"{jobs.name}.log")
        self.started += 1
        self._all.add(host)
        return host

    def _sweep(self) -> None:
        """Folders of hosts whose looplab is gone (killed before it could remove them)."""
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.root):
                pid = entry.name.split("-", 1)[0].split(".", 1)[0]
                if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)

    async def _ready(self, host: Host) -> Host:
        try:
            await host.receive(START_TIMEOUT_S)
        except HostGone:
            self._drop(host)
            raise
        host.ready = True
        return host

    def prestart(self) -> None:
        """Start a host now (when none is), to be ready by the first evaluation: it imports in its own process
        while looplab goes on starting."""
        if not self._all:
            with contextlib.suppress(OSError):
                self._idle.append(self._start())

    async def run(self, script: str, *, prepare: Callable[[Path], list[str]], timeout_s: float,
                  limits: LimitsConfig, pin_cpu: int | None = None,
                  template: Callable[[Path], None] | None = None) -> SandboxResult | None:
        """Run `python -I script ARGS` as a fresh child of a warm host; prepare(folder) fills the child's
        private folder and returns ARGS (its paths in that folder); template(folder) fills what all folders hold
        alike, in the background for the host's next one (root's, 0700: no child reaches it before its own).
        None: no host could start (the caller runs it cold)."""
        for _ in range(2):  # a host that died while idle is replaced before the evaluation starts
            host = await self._host()
            if host is None:
                return None
            uid = self._uid()
            work = await _folder(host, template)
            try:
                argv = prepare(work)
                (work / ".tmp").mkdir()
                os.chown(work, uid, uid)
                os.chown(work / ".tmp", uid, uid)
                os.chmod(work, 0o700)
                return await self._serve(host, uid, work, script, argv, timeout_s, limits, pin_cpu)
            except _NotTaken as e:
                host.why = str(e)
            finally:
                _remove_later(work)  # removing folders costs milliseconds on a disk: not on the way
                host.served += 1
                if host.broken or host.served >= JOBS_PER_HOST:
                    self._drop(host)
                else:
                    if template is not None:
                        host.next = (template, _BACKGROUND.submit(_new_folder, host.jobs, template))
                    self._idle.append(host)
        return None

    def _uid(self) -> int:
        while True:
            uid = sandbox.throwaway_uid()
            if uid not in self._sweeping:
                return uid

    def _sweep_later(self, uid: int) -> None:
        """looplab's own last sweep of a uid its host reported clean, off the evaluation's path."""
        self._sweeping.add(uid)
        _BACKGROUND.submit(sandbox.kill_uid, uid).add_done_callback(lambda _: self._sweeping.discard(uid))

    async def _host(self) -> Host | None:
        while self._idle:
            host = self._idle.pop()
            if host.proc.poll() is None:
                if host.ready:
                    return host
                with contextlib.suppress(HostGone):
                    return await self._ready(host)  # a prestarted one
                continue
            host.why = f"died while idle (status {host.proc.returncode})"
            self._drop(host)
        try:
            return await self._ready(self._start())
        except (HostGone, OSError):
            return None

    async def _serve(self, host: Host, uid: int, work: Path, script: str, argv: list[str], timeout_s: float,
                     limits: LimitsConfig, pin_cpu: int | None) -> SandboxResult:
        mb = 1024 * 1024
        env = sandbox.scrubbed_env(work, str(work / ".tmp"))
        request = {"uid": uid, "cwd": str(work), "env": env, "script": script, "argv": [script, *argv],
                   "pin": -1 if pin_cpu is None else pin_cpu,
                   "limits": [limits.cpu_s, limits.memory_mb * mb, limits.file_mb * mb, limits.open_files,
                              limits.max_procs]}
        cap = limits.output_kb * 1024
        out, err, flood = bytearray(), bytearray(), asyncio.Event()
        (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
        loop = asyncio.get_running_loop()
        readers: list[asyncio.Future] = []
        start = time.monotonic()
        rc: int | None = None
        timed_out = False
        try:
            try:
                socket.send_fds(host.sock, [json.dumps(request).encode()], [out_w, err_w])
            except OSError as e:
                raise _NotTaken(f"did not take an evaluation: {e}") from None
            finally:
                os.close(out_w)
                os.close(err_w)
            readers = [sandbox.start_reader(out_r, out, cap, flood), sandbox.start_reader(err_r, err, cap, flood)]
            ended = asyncio.ensure_future(host.receive(timeout_s + REPLY_GRACE_S))
            flooded = asyncio.ensure_future(flood.wait())
            answered = False
            try:
                done, _ = await asyncio.wait({ended, flooded}, timeout=timeout_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if ended not in done:
                    timed_out = not done
                    sandbox.kill_uid(uid)  # the child and all it started; the host then reports and cleans
                answer = await ended
                answered = True
                self.times.append([start, *answer.get("times", []), time.monotonic()])
                if "refused" in answer:  # it could not clean up after its last child: this one never started
                    raise _NotTaken(f"refused an evaluation: {answer['refused']}")
                status = answer.get("status")
                rc = os.waitstatus_to_exitcode(status) if isinstance(status, int) else None
            except HostGone as e:
                host.why = str(e)
                sandbox.kill_uid(uid)
                return _infra(str(e))
            finally:
                # As after a cold run, nothing of the uid outlives its evaluation: its host cleans it up before it takes
                # another (the uid cannot leave the host's pid namespace), and looplab's own sweep runs in the background.
                if answered and not timed_out and not host.broken:
                    self._sweep_later(uid)
                else:
                    sandbox.kill_uid(uid)
                flooded.cancel()
                if not answered:  # stopped midway (Ctrl-C): its answer would be read as the next one's
                    ended.cancel()
                    host.why = host.why or "stopped during an evaluation"
            wall = time.monotonic() - start
            await asyncio.wait(readers, timeout=2.0)
        finally:
            for fd in (out_r, err_r):
                if readers:
                    loop.remove_reader(fd)
                os.close(fd)
        return sandbox.result_of(rc, out, err, flood.is_set(), timed_out, wall)

    def _drop(self, host: Host) -> None:
        self.dropped.append(host.why or "retired")
        self._all.discard(host)
        host.close()

    def close(self) -> None:
        _close_all(self._all, self.root)
        self._idle.clear()


_POOLS: weakref.WeakValueDictionary[tuple, WarmPool] = weakref.WeakValueDictionary()


def pool_for(root: Path, readonly: Sequence[Path], hidden: Sequence[Path], shadow: Sequence[Path],
             imports: list[str]) -> WarmPool:
    """The pool for these settings: evaluators of one experiment in one process share its hosts (one that
    prestarted a host hands it to the run's), for as long as one of them holds the pool."""
    key = (str(root), *(tuple(map(str, paths)) for paths in (readonly, hidden, shadow)), tuple(imports))
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = WarmPool(root, readonly, hidden, shadow, imports)
    return pool


def _close_all(hosts: set[Host], root: Path) -> None:
    for host in list(hosts):
        host.close()
    hosts.clear()
    with contextlib.suppress(OSError):
        root.rmdir()  # when no other looplab's hosts are in it


def _new_folder(jobs: Path, template: Callable[[Path], None] | None) -> Path:
    work = jobs / secrets.token_hex(8)
    work.mkdir(mode=0o700)
    if template is not None:
        template(work)
    return work


async def _folder(host: Host, template: Callable[[Path], None] | None) -> Path:
    """The child's folder: the one made ahead for this host when it was made by this template, else a new one."""
    ahead, host.next = host.next, None
    with contextlib.suppress(Exception):  # a failure is made again below, where the caller sees it
        if ahead is not None and (work := await asyncio.wrap_future(ahead[1])) is not None:
            if ahead[0] is template:
                return work
            _remove_later(work)
    return _new_folder(host.jobs, template)


def _remove_later(path: Path) -> None:
    """Remove a finished child's folder in a thread (nobody else can enter it: 0700, its own uid)."""
    try:
        asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, path, True)
    except RuntimeError:
        shutil.rmtree(path, ignore_errors=True)


def _infra(reason: str) -> SandboxResult:
    return SandboxResult(None, "", "", False, 0.0, None, False, None, infra_error=reason)
