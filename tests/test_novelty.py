from looplab.novelty import NoveltyIndex, shingles, similarity

BASE = """void matmul(float* c, const float* a, const float* b, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float acc = 0.0f;
            for (int k = 0; k < n; k++) acc += a[i * n + k] * b[k * n + j];
            c[i * n + j] = acc;
        }
}
"""
IKJ = """void matmul(float* c, const float* a, const float* b, int n) {
    for (int i = 0; i < n * n; i++) c[i] = 0.0f;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            const float aik = a[i * n + k];
            for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
        }
}
"""


def test_tiny_edit_is_near_duplicate_but_new_structure_is_not():
    index = NoveltyIndex("c", threshold=0.95)
    index.add(3, BASE)
    tweaked = "// cosmetic\n" + BASE.replace("float acc = 0.0f;", "float acc = 0.0f; /* init */")
    assert index.nearest(tweaked) == (3, 1.0)
    constant = BASE.replace("float acc = 0.0f;", "float acc = 0.5f;")
    assert index.nearest(constant) is None  # tuning a constant is a real new candidate
    assert index.nearest(IKJ) is None
    renamed = BASE.replace("acc", "sum").replace("matmul", "mm")
    assert index.nearest(renamed) == (3, 1.0)
    retiled = BASE.replace("k++", "k += 1")
    assert index.nearest(retiled) is None or index.nearest(retiled)[1] < 1.0
    assert similarity(shingles(IKJ, "c"), shingles(BASE, "c")) < 0.7


def test_threshold_one_disables_near_duplicates():
    index = NoveltyIndex("c", threshold=1.0)
    index.add(1, BASE)
    assert index.nearest(BASE) is None


def test_prefix_filtered_index_finds_exactly_what_comparing_with_every_candidate_finds():
    import random

    rng = random.Random(7)
    words = [f"w{i}" for i in range(40)]
    base = [rng.choice(words) for _ in range(120)]
    sources = []
    for _ in range(150):  # variants of one program at every distance: from a copy to a rewrite
        tokens = list(base)
        for _ in range(rng.choice([0, 1, 2, 3, 5, 10, 40])):
            tokens[rng.randrange(len(tokens))] = rng.choice(words)
        sources.append(" ".join(tokens))
    sets = [shingles(s, "python") for s in sources]
    found = 0
    for threshold in (0.5, 0.8, 0.9, 0.95, 0.99):
        index = NoveltyIndex("python", threshold=threshold)
        for i, src in enumerate(sources[:100]):
            index.add(i, src)
        for probe, mine in zip(sources[100:], sets[100:], strict=True):
            hits = [(i, sim) for i in range(100) if (sim := similarity(mine, sets[i])) >= threshold]
            expected = max(hits, key=lambda x: (x[1], -x[0])) if hits else None
            assert index.nearest(probe) == expected, threshold
            found += expected is not None
    assert 0 < found < 250  # both near duplicates and novel probes were checked
