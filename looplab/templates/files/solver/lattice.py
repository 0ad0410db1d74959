"""Arrangements of n points in the unit square, and how to score one."""

import math


def grid(n: int) -> list[list[float]]:
    """A square grid, as many columns as rows: simple and far from the best known arrangements."""
    side = math.ceil(math.sqrt(n))
    step = 1.0 / max(side - 1, 1)
    return [[(k % side) * step, (k // side) * step] for k in range(n)]


def smallest_distance(points: list[list[float]]) -> float:
    return min(math.dist(p, q) for i, p in enumerate(points) for q in points[i + 1:])
