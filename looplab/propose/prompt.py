"""Render the prompt for one attempt from the experiment and what the search knows so far."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources

import jinja2

from looplab import filesets
from looplab.config import Direction, Experiment, ObjectiveKind
from looplab.records import Message

SYSTEM = (
    "You are an expert performance engineer. You write correct, fast code and answer in the exact "
    "format requested: a one-line Strategy, Tags, then exactly one fenced code block."
)


@dataclass
class Parent:
    id: int
    source: str
    note: str = ""


@dataclass
class Failure:
    id: int
    outcome: str
    reason: str
    feedback: str = ""  # what the evaluator said besides the verdict: per-case diagnostics, text feedback


@dataclass
class PromptContext:
    incumbent: str
    incumbent_speedup: str = ""  # e.g. "x1.41"
    memory: str = ""  # MEMORY.md, already bounded
    failures: list[Failure] = field(default_factory=list)
    parents: list[Parent] = field(default_factory=list)  # extra candidates shown (specialists, crossover)
    direction: str = ""  # a search-policy instruction, e.g. "try a structurally different approach"
    incumbent_metrics: str = ""  # what the evaluator measured for the current best (search cases only)


_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


@functools.lru_cache(maxsize=16)
def _compiled(text: str) -> jinja2.Template:
    return _ENV.from_string(text)  # compiled once per template text, not once per attempt


def _template(experiment: Experiment) -> jinja2.Template:
    if experiment.config.prompt.template:
        text = (experiment.root / experiment.config.prompt.template).read_text()
    else:
        text = resources.files("looplab").joinpath("templates/prompt.md.j2").read_text()
    return _compiled(text)


def goal_words(experiment: Experiment) -> tuple[str, str]:
    """("faster" or "better", a note saying which way the score goes) for the experiment's objective."""
    obj = experiment.config.objective
    if obj.is_time:
        return "faster", ""
    if obj.kind is ObjectiveKind.JUDGED:
        return "better", " (a judge compares its outputs with the current best's, case by case, under a rubric)"
    metric = f"`{obj.metric}`" if obj.metric else "score"
    return "better", f" (a {'higher' if obj.direction is Direction.MAXIMIZE else 'lower'} {metric} is better)"


FILES_SYSTEM = SYSTEM.replace("exactly one fenced code block", "each file you change in its own fenced code block, "
                               "its path on the line before it")


def render_prompt(experiment: Experiment, context: PromptContext) -> list[Message]:
    """The messages for one attempt: a short system message and the rendered task."""
    language_name = {"c": "C", "python": "Python"}.get(experiment.language, experiment.language.capitalize())
    target = experiment.target
    target_what = "program (keep the EVOLVE-BLOCK markers)" if not target else (
        f"definition of `{target}`" if experiment.language == "c" else f"definition of `def {target}`")
    better, goal_note = goal_words(experiment)
    user = _template(experiment).render(
        task=experiment.task_text.strip() or f"Make `{target or 'the program'}` {better}.",
        better=better,
        goal_note=goal_note,
        incumbent_metrics=context.incumbent_metrics,
        language=experiment.language,
        language_name=language_name,
        fence=experiment.language,
        target=target,
        target_what=target_what,
        incumbent=_shown(experiment, context.incumbent).rstrip(),
        files=experiment.config.target.files,
        incumbent_speedup=context.incumbent_speedup,
        memory=context.memory.strip(),
        failures=context.failures,
        parents=[Parent(p.id, _shown(experiment, p.source), p.note) for p in context.parents],
        direction=context.direction,
    )
    return [Message("system", FILES_SYSTEM if experiment.is_files else SYSTEM), Message("user", user)]


def _shown(experiment: Experiment, source: str) -> str:
    """A files target's candidate as the model reads it: each file's path, then the file in a fence."""
    if not experiment.is_files:
        return source
    try:
        files = filesets.unpack(source)
    except filesets.FilesError:
        return source
    return "\n".join(f"{path}\n```{experiment.language}\n{content}```\n" for path, content in files.items())


def render_markdown(messages: list[Message]) -> str:
    """How a prompt is written to runs/<attempt>/prompt.md."""
    return "\n\n".join(f"<!-- {m.role} -->\n{m.content}" for m in messages)
