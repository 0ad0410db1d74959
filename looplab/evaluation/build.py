"""Build one candidate in the sandbox, cached by source hash under .looplab/build/<hash>/.

For a C file, the sandboxed build first screens what the compiler sees (looplab/screen/compiler.py,
looplab/screen/objects.py), with the flags of the build's own compile of {candidate}, the same path
and the same fixed SOURCE_DATE_EPOCH as the build: the candidate's direct includes (gcc -H) must be
allowed system headers; its preprocessed lines must not name a forbidden identifier or an asm
statement (unless [screen] allow_asm) nor probe files (__has_include, poisoned); the object, compiled
alone, must export only the target, carry no .init/.fini/constructor or home-made sections, ifunc
symbols, executable data or system call instructions, and import only allowed symbols (libm,
mem*/str*, compiler helpers, [screen] allowed_symbols). Compiler messages shown to the model, in a
reason or in the log, concern the candidate only: no other file's text comes back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from looplab import filesets, harness, layout
from looplab.config import Experiment
from looplab.records import Outcome
from looplab.sandbox.command import SandboxResult, run_sandboxed, scrub_secrets
from looplab.screen import compiler as compiler_screen
from looplab.screen import objects as object_screen
from looplab.screen import policy as screen

_REASON_CHARS = 800


@dataclass
class Build:
    ok: bool
    dir: Path
    candidate: Path
    binary: Path
    failure: Outcome | None = None
    reason: str = ""
    log: str = ""


def private_paths(exp: Experiment) -> list[Path]:
    """What looplab wrote into the experiment (store, runs, scores, winners, git): hidden from candidates,
    which could otherwise print holdout names or other attempts into output the model reads."""
    root = exp.root
    return [root / n for n in sorted(layout.GENERATED)] + sorted(root.glob(layout.incumbent_name("*")))


def substitute(template: str, values: dict[str, str]) -> str:
    """Fill {placeholders}; every value is shell-quoted except {cases} (already a quoted list)."""
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", value if key == "cases" else shlex.quote(value))
    return out


def experiment_fingerprint(exp: Experiment) -> str:
    """Hash of what a build depends on besides the source: commands, the experiment's own files and
    the harness library."""
    h = hashlib.sha256(harness.fingerprint().encode())
    for module in (compiler_screen, object_screen, screen):  # a build passed the screen of its day
        h.update(Path(module.__file__).read_bytes())
    h.update(b"policy" if compiler_screen.ENFORCE_POLICY else b"no policy")
    cfg = exp.config
    h.update(f"{exp.language}\0{exp.target}\0{cfg.build.command}\0{cfg.evaluate.command}".encode())
    for dirpath, dirnames, filenames in os.walk(exp.root):
        dirnames[:] = sorted(d for d in dirnames if not layout.is_generated(d))
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if layout.is_generated(name) or p.stat().st_size > 1 << 20:
                continue
            h.update(str(p.relative_to(exp.root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _first_errors(output: str, build_dir: Path, screened: str) -> str:
    """The first errors; for a screened C file (its name) only those about it: no other file's text
    reaches the model."""
    if screened:
        kept = compiler_screen.diagnostics(output, build_dir, name=screened)
        return scrub_secrets(compiler_screen.first_errors(kept))[:_REASON_CHARS]
    text = output.replace(str(build_dir) + "/", "")
    lines = [ln for ln in text.splitlines() if re.search(r"error|undefined reference|multiple definition", ln)]
    picked = "\n".join((lines or text.strip().splitlines()[-6:])[:6])
    return scrub_secrets(picked)[:_REASON_CHARS] or "build failed with no message"


async def _sandboxed(exp: Experiment, command: str, build_dir: Path, timeout_s: float) -> SandboxResult:
    readonly = [exp.root, *harness.readonly_paths(exp.config.build.command)]
    return await run_sandboxed(["/bin/sh", "-c", command], workdir=build_dir, readonly=readonly,
                               timeout_s=timeout_s, limits=exp.config.limits, hidden=private_paths(exp))


async def _compile(exp: Experiment, build_dir: Path, candidate: Path, binary: Path) -> Build:
    """Compiler screen (C) then the experiment's build command; returns the outcome, not cached yet."""
    timeout = exp.config.build.timeout_s
    result = Build(ok=True, dir=build_dir, candidate=candidate, binary=binary)
    logs: list[str] = []
    values = {"candidate": str(candidate), "workdir": str(build_dir), "experiment": str(exp.root),
              "binary": str(binary), **harness.placeholders()}
    screened = exp.language == "c" and candidate.is_file()  # one C file (not a workspace of files)
    if screened:
        cc, flags, forced = compiler_screen.compile_flags(exp.config.build.command, values)
        res = await _sandboxed(exp, compiler_screen.script(cc, flags, str(candidate)), build_dir, timeout)
        if res.infra_error or res.timed_out:
            return _failed(result, res, "", timeout, logs)
        finding, log = compiler_screen.problem(exp, build_dir, candidate.read_text(), forced, str(candidate))
        logs.append(log)
        if finding:
            result.ok, result.failure = False, finding.outcome
            result.reason = scrub_secrets(finding.reason)[:_REASON_CHARS]
            result.log = _log(logs, build_dir)
            return result
    if exp.config.build.command:
        command = substitute(exp.config.build.command, values)
        if screened:  # the same __DATE__ and __TIME__ the screen compiled with
            command = f"{compiler_screen.BUILD_ENV} {command}"
        res = await _sandboxed(exp, command, build_dir, timeout)
        output = res.stdout + res.stderr
        logs.append(compiler_screen.diagnostics(output, build_dir, name=candidate.name) if screened else output)
        if res.returncode != 0 or res.timed_out or res.infra_error:
            errors = _first_errors(res.stderr + res.stdout, build_dir, candidate.name if screened else "")
            return _failed(result, res, errors, timeout, logs)
    result.log = _log(logs, build_dir)
    return result


def _log(logs: list[str], build_dir: Path) -> str:
    text = "\n".join(x for x in logs if x.strip()).replace(str(build_dir) + "/", "")
    return scrub_secrets(text)[-4000:]


def _failed(result: Build, res: SandboxResult, errors: str, timeout: float, logs: list[str]) -> Build:
    result.ok = False
    result.log = _log(logs, result.dir)
    if res.infra_error:
        result.failure, result.reason = Outcome.INFRA_ERROR, f"sandbox failed: {res.infra_error}"
    elif res.timed_out:
        result.failure, result.reason = Outcome.TIMEOUT, f"build timed out after {timeout:g}s"
    else:
        result.failure, result.reason = Outcome.COMPILE_ERROR, errors
    return result


def write_candidate(exp: Experiment, dest: Path, source: str) -> None:
    """The candidate as the build sees it: a file, or (a files target) a workspace — a copy of the
    experiment's own files with the candidate's files written over them — at {candidate}."""
    if not exp.is_files:
        dest.write_text(source)
        return

    def skipped(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if layout.is_generated(n)}

    shutil.copytree(exp.root, dest, ignore=skipped, symlinks=True)
    filesets.write_tree(dest, source)


def _save(build: Build) -> None:
    data = {"ok": build.ok, "failure": build.failure.value if build.failure else None,
            "reason": build.reason, "log": build.log}
    (build.dir / "build.json").write_text(json.dumps(data))


def _load(build_dir: Path, ext: str) -> Build:
    data = json.loads((build_dir / "build.json").read_text())
    return Build(ok=data["ok"], dir=build_dir, candidate=build_dir / f"candidate.{ext}",
                 binary=build_dir / "binary", failure=Outcome(data["failure"]) if data["failure"] else None,
                 reason=data["reason"], log=data["log"])


async def build_candidate(exp: Experiment, source: str, key: str) -> Build:
    """Build once per key; concurrent processes build in private dirs and the first rename wins."""
    root = exp.state_dir / "build"
    final = root / key
    if (final / "build.json").is_file():
        return _load(final, exp.ext)
    tmp = root / f"{key}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    candidate = tmp / f"candidate.{exp.ext}"
    write_candidate(exp, candidate, source)
    built = await _compile(exp, tmp, candidate, tmp / "binary")
    if built.failure in (Outcome.TIMEOUT, Outcome.INFRA_ERROR):  # may be the machine's fault: not cached
        shutil.rmtree(tmp, ignore_errors=True)
        return built
    _save(built)
    try:
        os.rename(tmp, final)
    except OSError:  # another process finished the same build first
        shutil.rmtree(tmp, ignore_errors=True)
    return _load(final, exp.ext)
