"""Load and validate an experiment folder (experiment.toml) into an Experiment.

Every error a user can cause is a UserError whose message names the file, the field and the fix.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from looplab import filesets, layout
from looplab.errors import UserError
from looplab.evaluation.reference import Reference, read_reference
from looplab.resources import ResourcesConfig

if TYPE_CHECKING:
    from looplab.compat import PeerFolder


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetConfig(_Section):
    # c and python get function targets and language-specific screens; any other language (rust,
    # verilog, go, text...) is a region (EVOLVE-BLOCK markers in comments) or whole files.
    language: str = Field(default="c", pattern=r"^[a-z][a-z0-9_+#-]{0,31}$")
    function: str = ""  # the one function the model may change; empty: the EVOLVE-BLOCK region of the baseline
    # Whole files the model may rewrite (paths in the experiment); their current content is the baseline.
    files: list[str] = Field(default_factory=list)
    baseline: str = ""  # seed implementation file, relative to the experiment (not for a files target)
    task: str = "EXPERIMENT.md"  # what the model reads


class BuildConfig(_Section):
    # Placeholders: {candidate} {workdir} {experiment} {binary}; empty means no build step.
    command: str = ""
    timeout_s: float = Field(default=120, gt=0)


class EvaluateConfig(_Section):
    # Placeholders: {candidate} {workdir} {experiment} {binary} {seed} {cases}
    command: str = ""
    timeout_s: float = Field(default=120, gt=0)  # an evaluator file: per call (each cascade stage)
    # A Python evaluator file instead of a command, run with the experiment folder as working directory:
    # "openevolve": evaluate(program_path) -> dict or EvaluationResult; "shinka": evaluate.py run as
    # `python evaluate.py --program_path P --results_dir D`, writing metrics.json and correct.json.
    evaluator: str = ""
    evaluator_style: Literal["openevolve", "shinka"] = "openevolve"
    # openevolve: thresholds of a cascade (evaluate_stage1, 2, 3): a stage's combined_score at or above
    # cascade[i] lets stage i+2 run. Empty: evaluate() alone.
    cascade: list[float] = Field(default_factory=list, max_length=3)


class CasesConfig(_Section):
    search: list[str] = Field(default_factory=list)
    holdout: list[str] = Field(default_factory=list)


TIME_UNITS = ("ns", "us", "µs", "ms", "s", "cycles")


class ObjectiveKind(StrEnum):
    """What the evaluator reports, and so which acceptance rule decides (looplab/acceptance/choose.py)."""

    TIME = "time"  # timing samples
    SCORE = "score"  # a value the evaluator computes
    JUDGED = "judged"  # each case's output, compared by a model


class Direction(StrEnum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class NoiseSetting(StrEnum):
    """For a score: is it the same every run? AUTO evaluates the baseline twice to find out."""

    AUTO = "auto"
    DETERMINISTIC = "deterministic"
    NOISY = "noisy"


class ObjectiveConfig(_Section):
    # "time": the harness reports timing samples; "score": a value the evaluator computes; "judged": the
    # harness reports each case's output and a model compares them ([judge]). Unset: time for a time unit, else score.
    kind: ObjectiveKind | None = None
    metric: str = ""  # score: the reported metric that decides (default: the line's samples/score)
    metrics: list[str] = Field(default_factory=list)  # other named metrics shown beside it
    direction: Direction = Direction.MINIMIZE
    unit: str = "us"
    # Relative gain the candidate must clear (0.02 = 2%); unset: 1% for time, 0 (strictly better) for a score.
    min_gain: float | None = Field(default=None, ge=0, lt=1)
    min_gain_abs: float = Field(default=0.0, ge=0)  # score: absolute gain in the metric's unit
    # score: "auto" evaluates the baseline twice and picks deterministic (equal) or noisy (different).
    noise: NoiseSetting = NoiseSetting.AUTO
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    rounds: int = Field(default=3, ge=1, le=100)  # interleaved candidate/incumbent runs (replicates)
    max_rounds: int = Field(default=9, ge=1, le=1000)  # cap for sequential testing

    @model_validator(mode="after")
    def _resolve(self) -> ObjectiveConfig:
        if self.kind is None:
            self.kind = ObjectiveKind.TIME if self.unit in TIME_UNITS else ObjectiveKind.SCORE
        if self.kind is ObjectiveKind.JUDGED and self.unit in TIME_UNITS:
            self.unit = "judged"  # wins against losses: no unit of measure
        if self.min_gain is None:
            self.min_gain = 0.01 if self.kind is ObjectiveKind.TIME else 0.0
        if self.kind is ObjectiveKind.TIME and self.min_gain_abs:
            raise ValueError("min_gain_abs is for score objectives; a time objective's gain is relative (min_gain)")
        return self

    @property
    def is_time(self) -> bool:
        return self.kind is ObjectiveKind.TIME


class JudgeConfig(_Section):
    """The model that compares outputs for a judged objective (looplab/acceptance/pairwise.py)."""

    model: str = ""  # provider spec; --judge-model wins
    base_url: str = ""  # an OpenAI- or Anthropic-compatible server; --judge-base-url wins
    price: str = ""  # IN/OUT[/CACHED] USD per million tokens, for a model genai-prices cannot price
    rubric: str = "RUBRIC.md"  # what makes one output better than another, in the experiment folder
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=300, gt=0)
    timeout_s: float = Field(default=120, gt=0)
    max_output_chars: int = Field(default=4000, gt=0)  # each output and input shown, cut beyond this
    concurrency: int = Field(default=4, ge=1, le=64)  # comparisons in flight at once


class ScreenConfig(_Section):
    allowed_includes: list[str] | None = None  # C: None means any
    allowed_imports: list[str] | None = None  # Python: None means any
    forbidden_identifiers: list[str] = Field(default_factory=list)
    forbidden_patterns: list[str] = Field(default_factory=list)  # regular expressions
    max_bytes: int = Field(default=65536, gt=0)
    allow_helpers: bool = True  # static helpers (C) / extra defs (Python) besides the target
    allow_asm: bool = False  # C: asm statements and asm labels (refused by default)
    allowed_symbols: list[str] = Field(default_factory=list)  # C: more symbols the object may import (globs)


class PromptConfig(_Section):
    template: str = ""  # optional Jinja2 template file in the experiment
    memory_chars: int = Field(default=4000, ge=0)
    failures_shown: int = Field(default=3, ge=0)


class ReferenceConfig(_Section):
    file: str = ""  # JSON in the experiment folder: {"what": ..., "cases": {case: {key: value}}}
    key: str = "median_us"  # the per-case value, in the objective's unit


STRATEGIES = ("best", "specialist", "crossover", "explore")


class SearchConfig(_Section):
    # How often each parent-selection strategy is drawn (normalised over the applicable ones).
    mix: dict[str, float] = Field(
        default_factory=lambda: {"best": 0.6, "specialist": 0.15, "crossover": 0.1, "explore": 0.15})
    explore_after: int = Field(default=5, ge=1)  # attempts without acceptance before explore is weighted up
    explore_boost: float = Field(default=3.0, ge=1)
    novelty: bool = True  # false: evaluate every candidate, even an exact repeat (for comparisons)
    near_duplicate: float = Field(default=0.95, gt=0, le=1)  # shingle similarity counted as a duplicate; 1 = exact only
    duplicate_retries: int = Field(default=3, ge=0)  # extra asks per attempt slot after a duplicate
    repair_turns: int = Field(default=1, ge=0, le=10)  # turns a failed candidate may be fixed in (repair.py)

    @field_validator("mix")
    @classmethod
    def _known_strategies(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(STRATEGIES))
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r}; use {', '.join(STRATEGIES)}")
        if any(w < 0 for w in v.values()) or not any(w > 0 for w in v.values()):
            raise ValueError("weights must be >= 0 and at least one > 0")
        return v


class LimitsConfig(_Section):
    cpu_s: int = Field(default=300, gt=0)
    memory_mb: int = Field(default=4096, gt=0)
    max_procs: int = Field(default=64, gt=0)
    file_mb: int = Field(default=256, gt=0)
    open_files: int = Field(default=256, gt=0)
    output_kb: int = Field(default=256, gt=0)


class ExperimentConfig(_Section):
    name: str = ""
    description: str = ""  # one line: shown under the title of SCORES.md and in `status --json`
    ideas: list[str] = Field(default_factory=list)
    target: TargetConfig
    build: BuildConfig = Field(default_factory=BuildConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    cases: CasesConfig = Field(default_factory=CasesConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    screen: ScreenConfig = Field(default_factory=ScreenConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)  # per evaluation, on a cluster
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)  # for "% of reference" in SCORES
    judge: JudgeConfig = Field(default_factory=JudgeConfig)  # objective.kind = "judged"

    @field_validator("ideas")
    @classmethod
    def _strip_ideas(cls, v: list[str]) -> list[str]:
        return [i.strip() for i in v if i.strip()]


EXTENSIONS = {"c": "c", "python": "py"}


@dataclass
class Experiment:
    """One search's folder and its validated contract."""

    root: Path
    config: ExperimentConfig
    peer: PeerFolder | None = None  # an OpenEvolve or Shinka folder read without experiment.toml

    @property
    def name(self) -> str:
        return self.config.name or self.root.name

    @property
    def language(self) -> str:
        return self.config.target.language

    @property
    def is_files(self) -> bool:
        """A files target: the candidate is a set of whole files (see looplab/filesets.py)."""
        return bool(self.config.target.files)

    @property
    def ext(self) -> str:
        """The candidate's extension on disk: c, py, the baseline's own (rs, v, ...), or "files" (a folder)."""
        if self.is_files:
            return "files"
        return EXTENSIONS.get(self.language) or self.baseline_path.suffix.lstrip(".") or "txt"

    @property
    def target(self) -> str:
        return self.config.target.function

    @property
    def baseline_path(self) -> Path:
        return self.root / self.config.target.baseline

    @property
    def baseline_source(self) -> str:
        if self.is_files:
            return filesets.read_tree(self.root, self.config.target.files)
        return self.baseline_path.read_text()

    @property
    def task_text(self) -> str:
        if self.peer is not None and self.peer.task is not None:
            return self.peer.task  # e.g. OpenEvolve's prompt.system_message
        p = self.root / self.config.target.task
        return p.read_text() if p.is_file() else ""

    @property
    def state_dir(self) -> Path:
        return self.root / layout.STATE_DIR

    @property
    def store_path(self) -> Path:
        return self.state_dir / layout.STORE_FILE

    @property
    def runs_dir(self) -> Path:
        return self.root / layout.RUNS_DIR

    @property
    def winners_dir(self) -> Path:
        return self.root / layout.WINNERS_DIR

    @property
    def search_cases(self) -> list[str]:
        return list(self.config.cases.search)

    @property
    def holdout_cases(self) -> list[str]:
        return list(self.config.cases.holdout)

    @cached_property
    def reference(self) -> Reference | None:
        """The machine's reference per case, when experiment.toml names one (checked at load)."""
        ref = self.config.reference
        return read_reference(self.root / ref.file, ref.key) if ref.file else None

    def hide_holdout(self, text: str) -> str:
        """Holdout case names never reach the model."""
        for name in self.holdout_cases:
            text = re.sub(rf"(?<![\w]){re.escape(name)}(?![\w])", "a hidden holdout case", text)
        return text


def _field_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _fix_hint(err: dict) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "remove it or check its spelling"
    if kind == "missing":
        return "add it"
    return "set a valid value"


def load_experiment(path: str | Path) -> Experiment:
    """Read EXPERIMENT_DIR/experiment.toml, validate it and check the files it names."""
    root = Path(path).resolve()
    if not root.is_dir():
        raise UserError(f"{path}: no such experiment folder (fix: pass a folder holding experiment.toml)")
    toml_path = root / "experiment.toml"
    peer = None
    if toml_path.is_file():
        try:
            raw = tomllib.loads(toml_path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"{toml_path}: not valid TOML: {e} (fix: correct the syntax)") from None
    else:
        from looplab import compat

        peer = compat.detect(root)
        if peer is None:
            raise UserError(
                f"{toml_path}: missing (fix: create it, e.g. with `looplab new NAME`, or use an OpenEvolve "
                "folder (initial_program.* and evaluator.py) or a ShinkaEvolve one (initial.* and evaluate.py))"
            )
        raw = peer.config
        toml_path = root / (peer.source or "")  # errors name the settings file the folder has
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise UserError(
            f"{toml_path}: field '{_field_path(err['loc'])}': {err['msg']}{more} (fix: {_fix_hint(err)})"
        ) from None
    from looplab.config_checks import check_files  # it reads the Experiment defined here

    exp = Experiment(root=root, config=config, peer=peer)
    check_files(exp, toml_path)
    return exp
