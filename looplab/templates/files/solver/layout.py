"""Where the points go: the best of the arrangements solver/lattice.py can make."""

from lattice import grid, smallest_distance


def place(n: int) -> list[list[float]]:
    candidates = [grid(n)]
    return max(candidates, key=smallest_distance)
