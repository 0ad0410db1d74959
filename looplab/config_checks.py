"""What experiment.toml names must exist and agree: each failure a UserError naming the field and the fix."""

from __future__ import annotations

from pathlib import Path

from looplab import filesets
from looplab.config import EXTENSIONS, Experiment, ObjectiveKind
from looplab.errors import UserError


def _target_files(exp: Experiment, toml_path: Path) -> None:
    target = exp.config.target
    if target.function or target.baseline:
        raise UserError(f"{toml_path}: field 'target.files': a files target has no function or baseline "
                        "(fix: remove target.function and target.baseline; the files are the baseline)")
    for name in target.files:
        try:
            safe = filesets.safe_path(name)
        except filesets.FilesError as e:
            raise UserError(f"{toml_path}: field 'target.files': {e} (fix: give paths inside the experiment)") from None
        if not (exp.root / safe).is_file():
            raise UserError(f"{toml_path}: field 'target.files': {name} not found in {exp.root} "
                            "(fix: create it or correct the path)")


def check_files(exp: Experiment, toml_path: Path) -> None:
    """Every file experiment.toml names exists, and the settings agree with each other."""
    cfg = exp.config
    if exp.is_files:
        _target_files(exp, toml_path)
    elif not cfg.target.baseline:
        raise UserError(f"{toml_path}: field 'target.baseline': missing (fix: name the seed implementation "
                        "file, or list whole files the model may rewrite in target.files)")
    elif not exp.baseline_path.is_file():
        raise UserError(
            f"{toml_path}: field 'target.baseline': file {cfg.target.baseline} not found in {exp.root} "
            "(fix: point it at the seed implementation)"
        )
    if cfg.prompt.template and not (exp.root / cfg.prompt.template).is_file():
        raise UserError(
            f"{toml_path}: field 'prompt.template': file {cfg.prompt.template} not found (fix: create it or remove the field)"
        )
    if cfg.evaluate.evaluator:
        if not (exp.root / cfg.evaluate.evaluator).is_file():
            raise UserError(
                f"{toml_path}: field 'evaluate.evaluator': file {cfg.evaluate.evaluator} not found "
                "(fix: point it at a Python file defining evaluate(program_path))"
            )
    elif not cfg.evaluate.command:
        raise UserError(
            f"{toml_path}: field 'evaluate.command': missing (fix: give the command that prints one JSON object per case)"
        )
    if cfg.target.function and exp.language not in EXTENSIONS:
        raise UserError(
            f"{toml_path}: field 'target.language': a function target needs c or python, not {exp.language!r} "
            f"(fix: set the language, or mark the region of {cfg.target.baseline} the model may change with "
            "EVOLVE-BLOCK-START/END comments and remove target.function)"
        )
    if not exp.is_files and not cfg.target.function and "EVOLVE-BLOCK-START" not in exp.baseline_source:
        raise UserError(
            f"{toml_path}: field 'target.function': missing (fix: name the function to change, "
            "or mark a region of the baseline with EVOLVE-BLOCK-START/EVOLVE-BLOCK-END)"
        )
    if cfg.reference.file:
        try:
            exp.reference  # noqa: B018 - read once to check it
        except ValueError as e:
            raise UserError(f"{toml_path}: field 'reference.file': {e} "
                            "(fix: regenerate it or remove the [reference] section)") from None
    if cfg.evaluate.command and not cfg.evaluate.evaluator and not cfg.cases.search:
        raise UserError(f"{toml_path}: field 'cases.search': no search cases (fix: name at least one case the "
                        "harness measures, e.g. search = [\"n128\"]; search cases decide acceptance)")
    if cfg.objective.kind is ObjectiveKind.JUDGED and not (exp.root / cfg.judge.rubric).is_file():
        raise UserError(f"{toml_path}: field 'judge.rubric': file {cfg.judge.rubric} not found in {exp.root} "
                        "(fix: write what makes one output better than another in it, or point the field at it)")
    overlap = set(cfg.cases.search) & set(cfg.cases.holdout)
    if overlap:
        raise UserError(
            f"{toml_path}: field 'cases.holdout': {sorted(overlap)} also in cases.search (fix: a case is one or the other)"
        )
