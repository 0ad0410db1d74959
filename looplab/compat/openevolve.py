"""OpenEvolve's folder: initial_program.<ext> beside evaluator.py, with config.yaml read as OpenEvolve reads it.

Honoured: prompt.system_message (the task), evaluator.timeout (per stage), evaluator.cascade_evaluation and
cascade_thresholds (stage 1 gates stage 2 gates stage 3), evaluator.memory_limit_mb, max_iterations (the
default --loop), llm.temperature and llm.max_tokens (where no flag gives them), language, file_suffix and
max_code_length. Everything else is named at the start of a run (docs/compatibility.md says why).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from looplab.compat import PeerFolder, calls, flatten, number, read_yaml, task_file, unhonoured

EVALUATOR = "evaluator.py"
DEFAULT_TIMEOUT_S = 300.0  # OpenEvolve's evaluator.timeout when the config does not say
DEFAULT_THRESHOLDS = [0.5, 0.75, 0.9]  # OpenEvolve's cascade_thresholds default
NOT_PROGRAMS = {".pyc", ".pyo", ".orig", ".bak", ".swp", ".md", ".txt", ".json", ".yaml", ".yml", ".png"}
LANGUAGES = {".py": "python", ".c": "c", ".h": "c", ".rs": "rust", ".r": "r", ".js": "javascript",
             ".ts": "typescript", ".cpp": "cpp", ".cc": "cpp", ".cu": "cuda", ".go": "go", ".jl": "julia",
             ".java": "java", ".metal": "metal", ".sv": "verilog", ".v": "verilog", ".f90": "fortran",
             ".sh": "sh", ".mlir": "mlir", ".txt": "text"}

# Why a setting is not honoured, by dotted-path prefix (first match wins).
REASONS = [
    ("llm.temperature", "a per-model value: looplab uses one temperature, from llm.temperature or --temperature"),
    ("llm.", "the model is chosen with --model (and --base-url); one model, no ensemble"),
    ("prompt.", "looplab writes its own prompt: the task, the current best, memory and the evaluator's feedback"),
    ("database.feature_dimensions", "no MAP-Elites grid; without combined_score the score is the mean of every "
     "numeric metric, these too"),
    ("database.", "looplab keeps one incumbent, its winners and specialists; parents come from [search] mix"),
    ("evaluator.parallel_evaluations", "use --workers"),
    ("evaluator.max_retries", "an evaluation runs once; a noisy score gets replicates, a failure counts"),
    ("evaluator.use_llm_feedback", "the evaluator decides; no model grades candidates"),
    ("evaluator.llm_feedback_weight", "the evaluator decides; no model grades candidates"),
    ("evaluator.enable_artifacts", "artifacts are always kept: scrubbed and capped, they reach the model and runs/"),
    ("evaluator.cpu_limit", "the sandbox's [limits] apply (cpu_s, memory_mb, processes)"),
    ("evaluator.distributed", "use --executor ray"),
    ("evaluator.", "not used by looplab"),
    ("checkpoint_interval", "every attempt is recorded in the store as it ends"),
    ("log_level", "looplab prints its own progress"),
    ("log_dir", "looplab writes runs/ and its store"),
    ("random_seed", "use --seed (the strategy mix); the evaluator draws its own randomness"),
    ("diff_based_evolution", "the model may answer with the program, the EVOLVE-BLOCK body or SEARCH/REPLACE edits"),
    ("allow_full_rewrites", "the model may answer with the program, the EVOLVE-BLOCK body or SEARCH/REPLACE edits"),
    ("diff_pattern", "looplab reads SEARCH/REPLACE edits in its own format"),
    ("early_stopping", "use --loop or --budget-usd"),
    ("convergence_threshold", "use --loop or --budget-usd"),
    ("evolution_trace.", "runs/ and the store keep every prompt, reply and result"),
    ("novelty.", "looplab's own novelty check ([search] novelty, near_duplicate)"),
    ("max_tasks_per_child", "each evaluation is a fresh sandboxed process"),
    ("file_suffix", "the program keeps its own suffix"),
]


def program(root: Path) -> Path | None:
    """initial_program.<ext> beside evaluator.py (a .py one first), or None."""
    found = _programs(root)
    return next((p for p in found if p.suffix == ".py"), found[0] if found else None)


def _programs(root: Path) -> list[Path]:
    if not (root / EVALUATOR).is_file():
        return []
    return sorted(p for p in root.glob("initial_program.*") if p.is_file() and p.suffix not in NOT_PROGRAMS)


def config_file(root: Path) -> tuple[Path | None, list[str]]:
    """config.yaml, else the first config*.yaml (a note names the others)."""
    for name in ("config.yaml", "config.yml"):
        if (root / name).is_file():
            return root / name, []
    found = sorted([*root.glob("config*.yaml"), *root.glob("config*.yml")])
    if not found:
        return None, []
    notes = [f"{p.name}: not read (looplab reads one settings file, {found[0].name}; "
             "copy the one you want to config.yaml)" for p in found[1:]]
    return found[0], notes


def read(root: Path) -> PeerFolder:
    path, notes = config_file(root)
    data = read_yaml(path) if path else {}
    source = path.name if path else ""
    settings = flatten(data)
    used: set[str] = set()
    honoured: list[str] = []

    def take(name: str, value: Any, shown: str) -> None:
        used.add(name)
        honoured.append(shown)

    llm, prompt_cfg, evaluator = (_section(data, k) for k in ("llm", "prompt", "evaluator"))
    prog = _program_for(root, data.get("file_suffix"))
    if "file_suffix" in data and data["file_suffix"] == prog.suffix:
        used.add("file_suffix")
    language = str(data["language"]).strip().lower() if isinstance(data.get("language"), str) else ""
    if language:
        take("language", language, f"language {language}")
    language = language or LANGUAGES.get(prog.suffix.lower(), prog.suffix.lstrip(".").lower() or "text")

    evaluate: dict[str, Any] = {"evaluator": EVALUATOR, "timeout_s": DEFAULT_TIMEOUT_S}
    timeout = number(evaluator.get("timeout"), float)
    if timeout is not None and timeout > 0:
        evaluate["timeout_s"] = timeout
        take("evaluator.timeout", timeout, f"evaluator.timeout {timeout:g} s")
    cascade_on = evaluator.get("cascade_evaluation", True)  # OpenEvolve's default is on
    thresholds = evaluator.get("cascade_thresholds", DEFAULT_THRESHOLDS)
    if isinstance(cascade_on, bool):
        used.add("evaluator.cascade_evaluation")
    if cascade_on is True and _numbers(thresholds):
        evaluate["cascade"] = [float(t) for t in thresholds[:3]]  # OpenEvolve reads the first two
        if "evaluator.cascade_thresholds" in settings:
            used.add("evaluator.cascade_thresholds")
        if _defines(root / EVALUATOR, "evaluate_stage1"):
            honoured.append(f"cascade thresholds {evaluate['cascade']}")
        elif "evaluator.cascade_evaluation" in settings:
            notes.append(f"{source}: evaluator.cascade_evaluation: {EVALUATOR} has no evaluate_stage1, "
                         "so evaluate() alone decides (as in OpenEvolve)")
    elif cascade_on is True:
        notes.append(f"{source}: evaluator.cascade_thresholds {thresholds!r} is not a list of numbers; "
                     "evaluate() alone decides")
        used.add("evaluator.cascade_thresholds")

    limits: dict[str, Any] = {"cpu_s": _cpu_s(evaluate)}
    memory = number(evaluator.get("memory_limit_mb"), int)
    if memory is not None and memory > 0:
        limits["memory_mb"] = memory
        take("evaluator.memory_limit_mb", memory, f"evaluator.memory_limit_mb {memory}")
    screen: dict[str, Any] = {"allowed_imports": None} if language == "python" else {}
    max_code = number(data.get("max_code_length"), int)
    if max_code is not None and max_code > 0:
        screen["max_bytes"] = max_code
        take("max_code_length", max_code, f"max_code_length {max_code}")

    peer = PeerFolder(kind="OpenEvolve", config={}, source=source, names={
        "loop": "max_iterations", "temperature": "llm.temperature", "max_tokens": "llm.max_tokens"})
    loop = number(data.get("max_iterations"), int)
    if loop is not None and loop > 0:
        peer.loop = loop
        take("max_iterations", loop, f"max_iterations {loop} (the default --loop)")
    temperature = number(llm.get("temperature"), float)
    if temperature is not None:
        peer.temperature = temperature
        take("llm.temperature", temperature, f"llm.temperature {temperature:g}")
    max_tokens = number(llm.get("max_tokens"), int)
    if max_tokens is not None and max_tokens > 0:
        peer.max_tokens = max_tokens
        take("llm.max_tokens", max_tokens, f"llm.max_tokens {max_tokens}")
    task, where = task_file(root)
    # prompt.system_message is the task; some authors wrote it under llm: (meant the same, so read it too).
    said = [(k, s.get("system_message")) for k, s in (("prompt", prompt_cfg), ("llm", llm))]
    key, message = next(((k, m.strip()) for k, m in said if isinstance(m, str) and m.strip()
                         and m.strip() != "system_message"), ("", ""))
    if message:
        peer.task, peer.task_from = message, f"{source} {key}.system_message"
        used.add(f"{key}.system_message")
    else:
        peer.task_from = where
        if where == "README.md":
            notes.append(f"{source or 'the folder'}: no prompt.system_message; the model reads README.md "
                         "(check it does not give the answer away, or write EXPERIMENT.md)")
    peer.config = {
        "name": root.name,
        "target": {"language": language, "baseline": prog.name, "task": task},
        "evaluate": evaluate,
        "cases": {"search": ["score"]},
        "objective": {"direction": "maximize", "unit": "score"},
        "screen": screen,
        "limits": limits,
    }
    peer.honoured = honoured
    peer.notes = notes + unhonoured(source, settings, used, REASONS)
    return peer


def _section(data: dict, name: str) -> dict:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(number(v, float) is not None for v in value)


def _program_for(root: Path, suffix: Any) -> Path:
    found = _programs(root)
    if isinstance(suffix, str):
        match = [p for p in found if p.suffix == suffix]
        if match:
            return match[0]
    chosen = program(root)
    assert chosen is not None
    return chosen


def _defines(path: Path, name: str) -> bool:
    """The evaluator file defines a top-level function `name` (read as text: it is not imported here)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith((f"def {name}(", f"async def {name}(")) for line in text.splitlines())


def _cpu_s(evaluate: dict[str, Any]) -> int:
    """CPU seconds for the whole evaluation: at least looplab's default, and room for every stage's timeout."""
    return max(300, math.ceil(evaluate["timeout_s"] * calls(evaluate.get("cascade") or []) * 2))
