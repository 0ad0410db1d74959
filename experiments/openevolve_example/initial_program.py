"""Online bin packing: items arrive one at a time and must go into a bin at once.

OpenEvolve-style program for looplab: only the code inside the EVOLVE-BLOCK markers may
change; evaluator.py measures how few bins `priority` needs.
"""

# EVOLVE-BLOCK-START
def priority(item: float, remaining: list[float]) -> list[float]:
    """Score each open bin that can hold `item`, given its remaining capacity; the highest score wins.

    Baseline: worst fit (the emptiest bin).
    """
    return [float(r) for r in remaining]
# EVOLVE-BLOCK-END


def pack(items: list[float], capacity: float = 1.0) -> list[list[float]]:
    """Place items in arrival order; a new bin opens when no open bin can hold the item."""
    bins: list[list[float]] = []
    free: list[float] = []
    for item in items:
        fits = [i for i, f in enumerate(free) if f >= item]
        if fits:
            scores = priority(item, [free[i] for i in fits])
            chosen = fits[max(range(len(fits)), key=lambda j: scores[j])]
        else:
            bins.append([])
            free.append(capacity)
            chosen = len(bins) - 1
        bins[chosen].append(item)
        free[chosen] -= item
    return bins


if __name__ == "__main__":
    import random

    rng = random.Random(0)
    items = [round(rng.uniform(0.1, 0.7), 3) for _ in range(200)]
    print(f"{len(pack(items))} bins for {len(items)} items (sum {sum(items):.1f})")
