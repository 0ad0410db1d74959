"""Scores a function-minimisation program: how close its seeded searches get to the global minimum.

Deterministic: the same program scores the same every time (each trial is seeded).
"""

import importlib.util
import time

import numpy as np

GLOBAL_MIN = (-1.704, 0.678, -1.519)
TRIALS = 4


def evaluate(program_path):
    start = time.perf_counter()
    spec = importlib.util.spec_from_file_location("program", program_path)
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    values, distances = [], []
    for seed in range(TRIALS):
        x, y, value = program.run_search(seed)
        if not all(np.isfinite([x, y, value])):
            return {"combined_score": 0.0, "error": "non-finite result"}
        values.append(float(program.evaluate_function(x, y)))
        distances.append(float(np.hypot(x - GLOBAL_MIN[0], y - GLOBAL_MIN[1])))
    value_score = 1.0 / (1.0 + max(0.0, float(np.mean(values)) - GLOBAL_MIN[2]))
    distance_score = 1.0 / (1.0 + float(np.mean(distances)))
    return {
        "value_score": value_score,
        "distance_score": distance_score,
        "combined_score": 0.5 * value_score + 0.5 * distance_score,
        "eval_seconds": time.perf_counter() - start,
    }
