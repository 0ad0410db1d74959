"""Function minimisation (OpenEvolve-shaped benchmark task): find the minimum of a bumpy 2-D function.

Only the code between the EVOLVE-BLOCK markers may change. The search is seeded, so the evaluator's
score is the same every time the same program is evaluated (a deterministic score).
"""

import numpy as np


# EVOLVE-BLOCK-START
def search_algorithm(rng, iterations=300, bounds=(-5.0, 5.0)):
    """Random search: keep the best of `iterations` uniform draws."""
    best_x, best_y = rng.uniform(*bounds), rng.uniform(*bounds)
    best_value = evaluate_function(best_x, best_y)
    for _ in range(iterations):
        x, y = rng.uniform(*bounds), rng.uniform(*bounds)
        value = evaluate_function(x, y)
        if value < best_value:
            best_value, best_x, best_y = value, x, y
    return best_x, best_y, best_value
# EVOLVE-BLOCK-END


def evaluate_function(x, y):
    """Many local minima; the global one is near (-1.704, 0.678), about -1.519."""
    return np.sin(x) * np.cos(y) + np.sin(x * y) + (x**2 + y**2) / 20


def run_search(seed):
    return search_algorithm(np.random.default_rng(seed))
