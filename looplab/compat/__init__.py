"""Folders written for peer tools — OpenEvolve and ShinkaEvolve — run as their authors meant them to.

A folder without experiment.toml is recognised by its shape (looplab/compat/openevolve.py,
looplab/compat/shinka.py); its own settings become the experiment.toml it implies, its task text the
task, and every setting looplab does not honour is named at the start of a run (docs/compatibility.md).
The evaluator runs with its folder as working directory (looplab/compat/evaluators.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Settings looplab takes from a peer folder when no flag gives them.
RUN_SETTINGS = ("loop", "temperature", "max_tokens")


@dataclass
class PeerFolder:
    """What a peer tool's folder says, in looplab's terms."""

    kind: str  # "OpenEvolve" or "ShinkaEvolve"
    config: dict[str, Any]  # the experiment.toml the folder implies
    source: str = ""  # the settings file read, e.g. "config.yaml" (empty: none)
    task: str | None = None  # the task text from the settings (None: the folder's task file)
    task_from: str = ""  # where the task text comes from, e.g. "config.yaml prompt.system_message"
    loop: int | None = None  # attempts when --loop is not given
    temperature: float | None = None
    max_tokens: int | None = None
    names: dict[str, str] = field(default_factory=dict)  # the folder's own name of loop/temperature/max_tokens
    honoured: list[str] = field(default_factory=list)  # e.g. "evaluator.timeout 60 s"
    notes: list[str] = field(default_factory=list)  # one line per setting not honoured (or approximated)


def detect(root: Path) -> PeerFolder | None:
    """The peer folder at root, or None when it has neither shape. OpenEvolve's shape wins over Shinka's."""
    from looplab.compat import openevolve, shinka
    from looplab.errors import UserError
    from looplab.propose.extract import BLOCK_START

    if openevolve.program(root) is not None:
        peer = openevolve.read(root)
    elif shinka.program(root) is not None:
        peer = shinka.read(root)
    else:
        return None
    program = root / peer.config["target"]["baseline"]
    if BLOCK_START not in program.read_text(errors="replace"):
        raise UserError(f"{program}: no EVOLVE-BLOCK-START/EVOLVE-BLOCK-END markers (fix: put them, in comments, "
                        f"around the code the model may change; looplab does not evolve a whole {peer.kind} program)")
    return peer


def run_settings(peer: PeerFolder | None, *, loop: int | None, temperature: float | None,
                 max_tokens: int | None) -> tuple[dict[str, Any], list[str]]:
    """The run's loop/temperature/max_tokens: a flag wins, else the folder's setting; and the lines to
    print at the start of the run (what is read, what a flag overrides, what is not honoured)."""
    given = {"loop": loop, "temperature": temperature, "max_tokens": max_tokens}
    if peer is None:
        return given, []
    flag = {"loop": "--loop", "temperature": "--temperature", "max_tokens": "--max-tokens"}
    out, lines = dict(given), []
    for name in RUN_SETTINGS:
        theirs = getattr(peer, name)
        if theirs is None:
            continue
        if given[name] is None:
            out[name] = theirs
        else:
            lines.append(f"{peer.source}: {peer.names.get(name, name)} {theirs} overridden by "
                         f"{flag[name]} {given[name]}")
    where = f" ({peer.source})" if peer.source else ""
    read = ", ".join(peer.honoured) or "no settings"
    lines.insert(0, f"{peer.kind} folder{where}: {read}; task from {peer.task_from}")
    return out, lines + peer.notes


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf settings by dotted path ({"llm": {"temperature": 0.7}} -> {"llm.temperature": 0.7}); a list
    is one setting."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def unhonoured(source: str, settings: dict[str, Any], honoured: set[str],
               reasons: list[tuple[str, str]], origin: dict[str, str] | None = None) -> list[str]:
    """One line per setting looplab does not honour, naming it (and the file it is in: origin, else
    source) and why (the first matching reason by prefix)."""
    lines = []
    for path in settings:
        if path in honoured:
            continue
        why = next((text for prefix, text in reasons if path == prefix or path.startswith(prefix)),
                   "not used by looplab")
        lines.append(f"{(origin or {}).get(path, source)}: {path} not honoured ({why})")
    return lines


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML settings file as a dict; a malformed one is a user error naming the file."""
    import yaml

    from looplab.errors import UserError

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise UserError(f"{path}: not valid YAML{at} (fix: correct the syntax)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings, not {type(data).__name__} (fix: correct the file)")
    return data


def task_file(root: Path) -> tuple[str, str]:
    """(task file, where it comes from) when the settings hold no task: EXPERIMENT.md, else README.md."""
    for name in ("EXPERIMENT.md", "README.md"):
        if (root / name).is_file():
            return name, name
    return "EXPERIMENT.md", "nowhere (no task text in the folder: write EXPERIMENT.md)"


def calls(cascade: list[float]) -> int:
    """How many evaluator calls one evaluation may make: 1, or up to 3 in a cascade (stage 1 always runs;
    each threshold lets one more stage run)."""
    return min(len(cascade), 2) + 1 if cascade else 1


def number(value: Any, kind: type) -> Any:
    """value as int/float when it is one (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return kind(value)
