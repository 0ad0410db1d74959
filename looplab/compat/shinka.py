"""ShinkaEvolve's folder: initial.<ext> (with EVOLVE-BLOCK markers) beside evaluate.py, run as Shinka runs it.

Shinka's settings live in a YAML file (evo_config, db_config, ...) and in run_evo.py, which is read, never
run: the literal arguments of EvolutionConfig(...), LocalJobConfig(...), DatabaseConfig(...), a
`task_sys_msg` set from a string constant, and the --config_path default naming the YAML file.
Honoured: evo_config.task_sys_msg (the task), language, num_generations (the default --loop),
llm_kwargs.temperatures and max_tokens (where no flag gives them), init_program_path, and
job_config.time (the evaluation's timeout). Everything else is named at the start of a run.
"""

from __future__ import annotations

import ast
import math
import statistics
from pathlib import Path
from typing import Any

from looplab.compat import PeerFolder, flatten, number, read_yaml, task_file, unhonoured
from looplab.compat.openevolve import LANGUAGES as OE_LANGUAGES
from looplab.compat.openevolve import NOT_PROGRAMS

EVALUATE = "evaluate.py"
RUN_EVO = "run_evo.py"
DEFAULT_TIMEOUT_S = 300.0
NOT_LITERAL = "<not a literal>"
SECTIONS = {"EvolutionConfig": "evo_config", "DatabaseConfig": "db_config", "LocalJobConfig": "job_config",
            "SlurmDockerJobConfig": "job_config", "SlurmCondaJobConfig": "job_config", "JobConfig": "job_config"}
LANGUAGES = {**OE_LANGUAGES, ".wl": "wolfram", ".f": "fortran"}

REASONS = [
    ("evo_config.llm_kwargs.reasoning_efforts", "set the model's own options with --model"),
    ("evo_config.llm_", "the model is chosen with --model (and --base-url); one model, no bandit"),
    ("evo_config.meta_", "looplab's memory (and --reflect-every) plays this part"),
    ("evo_config.novelty_", "looplab's own novelty check ([search] novelty, near_duplicate)"),
    ("evo_config.embedding_model", "looplab's novelty check compares tokens, not embeddings"),
    ("evo_config.code_embed_sim_threshold", "use [search] near_duplicate in experiment.toml"),
    ("evo_config.max_novelty_attempts", "use [search] duplicate_retries in experiment.toml"),
    ("evo_config.patch_", "the model may answer with the program, the EVOLVE-BLOCK body or SEARCH/REPLACE edits"),
    ("evo_config.max_patch_", "a reply that cannot be used is recorded and the next attempt begins"),
    ("evo_config.max_api_costs", "use --budget-usd"),
    ("evo_config.results_dir", "looplab writes runs/ and its store into the folder"),
    ("evo_config.use_text_feedback", "text_feedback always reaches the model, scrubbed and capped"),
    ("evo_config.job_type", "evaluations run in looplab's sandbox (or --executor ray)"),
    ("evo_config.evolve_prompts", "looplab writes its own prompt"),
    ("evo_config.prompt_", "looplab writes its own prompt"),
    ("evo_config.", "not used by looplab"),
    ("db_config.", "looplab keeps one incumbent, its winners and specialists; parents come from [search] mix"),
    ("max_evaluation_jobs", "use --workers"),
    ("max_proposal_jobs", "use --workers"),
    ("max_db_workers", "one store, written as each attempt ends"),
    ("job_config.", "evaluate.py runs in looplab's sandbox"),
]


def program(root: Path) -> Path | None:
    """initial.<ext> beside evaluate.py (a .py one first), or None."""
    found = _programs(root)
    return next((p for p in found if p.suffix == ".py"), found[0] if found else None)


def _programs(root: Path) -> list[Path]:
    if not (root / EVALUATE).is_file():
        return []
    return sorted(p for p in root.glob("initial.*") if p.is_file() and p.suffix not in NOT_PROGRAMS | {".ipynb"})


def read(root: Path) -> PeerFolder:
    from_script, yaml_name = _read_run_evo(root / RUN_EVO)
    yaml_path, notes = _yaml_file(root, yaml_name)
    data = read_yaml(yaml_path) if yaml_path else {}
    for section, values in from_script.items():  # run_evo.py runs after loading the YAML: it wins
        merged = data.get(section) if isinstance(data.get(section), dict) else {}
        data[section] = {**merged, **values}
    sources = " and ".join(n for n in (yaml_path.name if yaml_path else "", RUN_EVO if from_script else "") if n)
    settings = flatten(data)
    evo = data.get("evo_config") if isinstance(data.get("evo_config"), dict) else {}
    job = data.get("job_config") if isinstance(data.get("job_config"), dict) else {}
    used: set[str] = set()
    honoured: list[str] = []
    peer = PeerFolder(kind="ShinkaEvolve", config={}, source=sources, names={
        "loop": "evo_config.num_generations", "temperature": "evo_config.llm_kwargs.temperatures",
        "max_tokens": "evo_config.llm_kwargs.max_tokens"})
    origin = dict.fromkeys(flatten(from_script), RUN_EVO)

    def literal(name: str, value: Any) -> bool:
        if value == NOT_LITERAL:
            notes.append(f"{sources}: {name} is not a literal; looplab cannot read it")
            used.add(name)
            return False
        return value is not None

    language = evo.get("language")
    if literal("evo_config.language", language) and isinstance(language, str):
        used.add("evo_config.language")
        honoured.append(f"evo_config.language {language.lower()}")
    prog = _program_for(root, evo.get("init_program_path"), language if isinstance(language, str) else "")
    if isinstance(evo.get("init_program_path"), str) and Path(evo["init_program_path"]).name == prog.name:
        used.add("evo_config.init_program_path")
    language = (language.lower() if isinstance(language, str) else
                LANGUAGES.get(prog.suffix.lower(), prog.suffix.lstrip(".").lower() or "text"))
    timeout = DEFAULT_TIMEOUT_S
    if literal("job_config.time", job.get("time")) and (seconds := _seconds(job["time"])):
        timeout = seconds
        used.add("job_config.time")
        honoured.append(f"job_config.time {job['time']} (the evaluation's timeout)")
    if isinstance(job.get("eval_program_path"), str) and Path(job["eval_program_path"]).name == EVALUATE:
        used.add("job_config.eval_program_path")
    loop = evo.get("num_generations")
    if literal("evo_config.num_generations", loop) and (n := number(loop, int)) and n > 0:
        peer.loop = n
        used.add("evo_config.num_generations")
        honoured.append(f"evo_config.num_generations {n} (the default --loop)")
    _llm_settings(peer, evo.get("llm_kwargs"), used, honoured, notes, sources)
    message = evo.get("task_sys_msg")
    task, where = task_file(root)
    if literal("evo_config.task_sys_msg", message) and isinstance(message, str) and message.strip():
        where = origin.get("evo_config.task_sys_msg", yaml_path.name if yaml_path else RUN_EVO)
        peer.task, peer.task_from = message.strip(), f"{where} evo_config.task_sys_msg"
        used.add("evo_config.task_sys_msg")
    else:
        peer.task_from = where
        if where == "README.md":
            notes.append(f"{sources or 'the folder'}: no task_sys_msg; the model reads README.md "
                         "(check it does not give the answer away, or write EXPERIMENT.md)")
    peer.config = {
        "name": root.name,
        "target": {"language": language, "baseline": prog.name, "task": task},
        "evaluate": {"evaluator": EVALUATE, "evaluator_style": "shinka", "timeout_s": timeout},
        "cases": {"search": ["score"]},
        "objective": {"direction": "maximize", "unit": "score"},
        "screen": {"allowed_imports": None} if language == "python" else {},
        "limits": {"cpu_s": max(300, math.ceil(timeout * 2))},
    }
    peer.honoured = honoured
    peer.notes = notes + unhonoured(yaml_path.name if yaml_path else RUN_EVO, settings, used, REASONS, origin)
    return peer


def _llm_settings(peer: PeerFolder, kwargs: Any, used: set[str], honoured: list[str], notes: list[str],
                  sources: str) -> None:
    if not isinstance(kwargs, dict):
        return
    temps = kwargs.get("temperatures")
    temps = temps if isinstance(temps, list) else [temps] if temps is not None else []
    values = sorted(t for t in (number(x, float) for x in temps) if t is not None)
    if values:
        peer.temperature = statistics.median_low(values)
        used.add("evo_config.llm_kwargs.temperatures")
        honoured.append(f"llm_kwargs temperature {peer.temperature:g}")
        if len(set(values)) > 1:
            notes.append(f"{sources}: evo_config.llm_kwargs.temperatures {values} approximated: Shinka draws "
                         f"one per call, looplab uses one ({peer.temperature:g})")
    max_tokens = number(kwargs.get("max_tokens"), int)
    if max_tokens is not None and max_tokens > 0:
        peer.max_tokens = max_tokens
        used.add("evo_config.llm_kwargs.max_tokens")
        honoured.append(f"llm_kwargs.max_tokens {max_tokens}")


def _program_for(root: Path, named: Any, language: str) -> Path:
    found = _programs(root)
    if isinstance(named, str):
        match = [p for p in found if p.name == Path(named).name]
        if match:
            return match[0]
    by_language = [p for p in found if LANGUAGES.get(p.suffix.lower()) == language.lower()]
    chosen = by_language[0] if by_language else program(root)
    assert chosen is not None
    return chosen


def _seconds(value: Any) -> float | None:
    """Shinka's "HH:MM:SS" (or a number of seconds) as seconds."""
    if (n := number(value, float)) is not None:
        return n if n > 0 else None
    if not isinstance(value, str):
        return None
    try:
        parts = [float(p) for p in value.strip().split(":")]
    except ValueError:
        return None
    total = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return total if 0 < total and len(parts) <= 3 else None


def _yaml_file(root: Path, named: str) -> tuple[Path | None, list[str]]:
    """The YAML run_evo.py loads by default, else shinka.yaml, else the first shinka*.yaml."""
    found = sorted([*root.glob("shinka*.yaml"), *root.glob("shinka*.yml")])
    chosen = next((root / n for n in (named, "shinka.yaml", "shinka.yml") if n and (root / n).is_file()),
                  found[0] if found else None)
    if chosen is None:
        return None, []
    return chosen, [f"{p.name}: not read (looplab reads one settings file, {chosen.name})"
                    for p in found if p.name != chosen.name]


def _read_run_evo(path: Path) -> tuple[dict[str, dict[str, Any]], str]:
    """run_evo.py's literal settings by section, and the default --config_path (read, never run)."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return {}, ""
    strings = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
               and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
               for t in n.targets if isinstance(t, ast.Name)}

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Name) and node.id in strings:
            return strings[node.id]
        try:
            return ast.literal_eval(node)
        except ValueError:
            return NOT_LITERAL

    found: dict[str, dict[str, Any]] = {}
    yaml_name = ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in SECTIONS:
                found.setdefault(SECTIONS[name], {}).update({k.arg: value(k.value) for k in node.keywords if k.arg})
            elif name == "add_argument" and node.args and value(node.args[0]) == "--config_path":
                default = next((value(k.value) for k in node.keywords if k.arg == "default"), "")
                yaml_name = default if isinstance(default, str) and default != NOT_LITERAL else ""
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:  # config["evo_config"]["task_sys_msg"] = X
            keys = _subscript_keys(node.targets[0])
            if len(keys) == 2 and keys[0] in SECTIONS.values():
                found.setdefault(keys[0], {})[keys[1]] = value(node.value)
    return found, yaml_name


def _subscript_keys(node: ast.AST) -> list[str]:
    keys: list[str] = []
    while isinstance(node, ast.Subscript):
        if not (isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            return []
        keys.insert(0, node.slice.value)
        node = node.value
    return keys
