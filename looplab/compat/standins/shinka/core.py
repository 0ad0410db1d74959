"""A stand-in for shinka.core.run_shinka_eval: run the program's experiment function, validate, aggregate,
and write metrics.json and correct.json into the results folder.

Runs are sequential (run_workers is accepted and not used); early stopping and plotting are not done.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import statistics
import time
from collections.abc import Callable
from typing import Any

ON_ERROR = {"combined_score": 0.0, "execution_time_mean": 0.0, "execution_time_std": 0.0,
            "num_successful_runs": 0, "num_valid_runs": 0, "num_invalid_runs": 0, "all_validation_errors": []}


def load_program(program_path: str) -> Any:
    spec = importlib.util.spec_from_file_location("program", program_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load a module from {program_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def save_json_results(results_dir: str, metrics: dict[str, Any], correct: bool, error: str | None = None,
                      verbose: bool = True) -> None:
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, "correct.json"), "w") as f:
        json.dump({"correct": correct, "error": error}, f, indent=4, default=_plain)
    with open(os.path.join(results_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=4, default=_plain)
    if verbose:
        print(f"metrics.json and correct.json written to {results_dir}")


def run_shinka_eval(program_path: str, results_dir: str, experiment_fn_name: str, num_runs: int,
                    get_experiment_kwargs: Callable[[int], dict[str, Any]] | None = None,
                    aggregate_metrics_fn: Callable[[list[Any]], dict[str, Any]] | None = None,
                    validate_fn: Callable[[Any], tuple[bool, str | None]] | None = None,
                    default_metrics_on_error: dict[str, Any] | None = None,
                    verbose: bool | None = None, **_ignored: Any) -> tuple[dict[str, Any], bool, str | None]:
    """Call experiment_fn_name num_runs times; returns (metrics, correct, first error) and writes both files."""
    verbose = os.environ.get("SHINKA_EVAL_VERBOSE", "1") != "0" if verbose is None else verbose
    correct, first_error = True, None
    results: list[Any] = []
    times: list[float] = []
    errors: list[str] = []
    valid = invalid = 0
    try:
        module = load_program(program_path)
        if not hasattr(module, experiment_fn_name):
            raise AttributeError(f"Experiment function '{experiment_fn_name}' not found in {program_path}")
        fn = getattr(module, experiment_fn_name)
        for i in range(num_runs):
            kwargs = get_experiment_kwargs(i) if get_experiment_kwargs else {"seed": i + 1}
            start = time.perf_counter()
            result = fn(**kwargs)
            times.append(time.perf_counter() - start)
            results.append(result)
            if validate_fn is None:
                continue
            ok, message = validate_fn(result)
            if ok:
                valid += 1
                continue
            invalid, correct = invalid + 1, False
            if message:
                first_error = first_error or f"Validation failed: {message}"
                if message not in errors:
                    errors.append(message)
        metrics = aggregate_metrics_fn(results) if aggregate_metrics_fn else {"num_successful_runs": len(results)}
        metrics["execution_time_mean"] = statistics.fmean(times) if times else 0.0
        metrics["execution_time_std"] = statistics.pstdev(times) if times else 0.0
        if validate_fn is not None:
            metrics.update(num_valid_runs=valid, num_invalid_runs=invalid, all_validation_errors=errors)
        score = metrics.get("combined_score")
        if isinstance(score, int | float) and not math.isfinite(score):
            correct, first_error = False, first_error or f"combined_score is {score}"
    except Exception as e:
        print(f"Evaluation error: {e}")
        fallback = default_metrics_on_error or {}
        metrics = {k: fallback.get(k, v) for k, v in ON_ERROR.items()}
        if validate_fn is not None:
            metrics["num_invalid_runs"] = len(results) or num_runs
            metrics["all_validation_errors"] = [str(e)]
        correct, first_error = False, str(e)
    if "extra_data" in metrics:
        os.makedirs(results_dir, exist_ok=True)
        with open(os.path.join(results_dir, "extra.pkl"), "wb") as f:
            pickle.dump(metrics.pop("extra_data"), f)
    save_json_results(results_dir, metrics, correct, first_error, verbose=verbose)
    return metrics, correct, first_error
