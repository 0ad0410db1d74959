def __FUNC__(xs: list[int]) -> int:
    """Length of the longest strictly increasing subsequence of xs (the baseline; replace with yours)."""
    best = [1] * len(xs)
    for i in range(len(xs)):
        for j in range(i):
            if xs[j] < xs[i] and best[j] + 1 > best[i]:
                best[i] = best[j] + 1
    return max(best, default=0)
