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
