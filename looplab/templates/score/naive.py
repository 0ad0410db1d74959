"""__NAME__: print N points in the unit square whose smallest pairwise distance is as large as possible.

Run as `python naive.py N`; the last line printed must be a JSON list of N [x, y] pairs.
"""

import json
import math
import sys


# EVOLVE-BLOCK-START
def place(n: int) -> list[list[float]]:
    """A square grid, as many columns as rows: simple and far from the best known arrangements."""
    side = math.ceil(math.sqrt(n))
    step = 1.0 / max(side - 1, 1)
    return [[(k % side) * step, (k // side) * step] for k in range(n)]
# EVOLVE-BLOCK-END


if __name__ == "__main__":
    print(json.dumps(place(int(sys.argv[1]))))
