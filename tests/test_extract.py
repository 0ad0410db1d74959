import pytest

from looplab.propose.extract import (
    ExtractError,
    apply_edits,
    extract_candidate,
    next_ideas,
    normalize,
    source_hash,
)

NAIVE = """void matmul(float* c, const float* a, const float* b, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float acc = 0.0f;
            for (int k = 0; k < n; k++) acc += a[i * n + k] * b[k * n + j];
            c[i * n + j] = acc;
        }
}
"""


def c(reply, **kw):
    return extract_candidate(reply, language="c", target="matmul", incumbent=NAIVE, **kw)


def test_one_block_with_strategy_tags_and_next():
    reply = ("Strategy: swap loops to ikj for unit stride\nTags: loop-interchange, cache\n\n"
             "```c\n#include <string.h>\nstatic inline float sq(float x) { return x * x; }\n" + NAIVE + "```\n"
             "Next: blocking; unroll by 4\n")
    cand = c(reply)
    assert cand.strategy == "swap loops to ikj for unit stride"
    assert cand.tags == ["loop-interchange", "cache"]
    assert "static inline float sq" in cand.source and "void matmul" in cand.source
    assert next_ideas(reply) == ["blocking", "unroll by 4"]


@pytest.mark.parametrize("reply, words", [
    ("I think loops should be swapped.", "no fenced code block"),
    ("```c\nint helper(void) { return 1; }\n```", "no code block defines"),
    ("```c\n" + NAIVE + "```\nand again\n```c\n" + NAIVE + "```", "2 code blocks define"),
    ("```c\n" + NAIVE + NAIVE.replace("{", "{ ", 1) + "```", "defined 2 times"),
    ("```c\nint helper(int x) { return x; }\n" + NAIVE + "```", "must be `static`"),
    ("```c\n" + NAIVE + "\nint main(void) { return 0; }\n```", "must be `static`"),
    ("Strategy: x\n```c\n" + NAIVE[:80], "not closed"),
])
def test_unusable_replies_say_why(reply, words):
    with pytest.raises(ExtractError, match=words):
        c(reply)


def test_prototype_and_strings_do_not_count_as_definitions():
    reply = ("```c\nvoid matmul(float* c, const float* a, const float* b, int n);\n"
             "/* void matmul(float* c) { } */\nconst char* s = \"matmul(x) {\";\n" + NAIVE + "```")
    assert "void matmul" in c(reply).source


def test_helpers_refused_when_policy_forbids():
    reply = "```c\nstatic int h(int x) { return x; }\n" + NAIVE + "```"
    with pytest.raises(ExtractError, match="extra top-level"):
        c(reply, allow_helpers=False)


def test_search_replace_edits_apply_to_incumbent():
    reply = ("Strategy: hoist\n<<<<<<< SEARCH\n            float acc = 0.0f;\n=======\n"
             "            register float acc = 0.0f;\n>>>>>>> REPLACE\n")
    assert "register float acc" in c(reply).source
    bad = "<<<<<<< SEARCH\nnot there\n=======\nx\n>>>>>>> REPLACE\n"
    with pytest.raises(ExtractError, match="does not match"):
        apply_edits(NAIVE, bad)


def test_python_target_and_evolve_blocks():
    inc = "import math\n# EVOLVE-BLOCK-START\ndef f(x):\n    return x\n# EVOLVE-BLOCK-END\n\nprint(f(1))\n"
    body_only = "```python\ndef f(x):\n    return x * 2\n```"
    cand = extract_candidate(body_only, language="python", target="", incumbent=inc)
    assert cand.source.startswith("import math\n# EVOLVE-BLOCK-START\ndef f(x):\n    return x * 2\n# EVOLVE-BLOCK-END")
    assert cand.source.rstrip().endswith("print(f(1))")
    outside = "```python\nimport os\n# EVOLVE-BLOCK-START\ndef f(x):\n    return 3\n# EVOLVE-BLOCK-END\n\nprint(f(1))\n```"
    with pytest.raises(ExtractError, match="outside"):
        extract_candidate(outside, language="python", target="", incumbent=inc)
    py = extract_candidate("```python\ndef lev(a, b):\n    return 0\n```", language="python", target="lev",
                           incumbent="def lev(a, b):\n    return 1\n")
    assert "return 0" in py.source


def test_normalize_ignores_comments_and_whitespace_only():
    respelled = "/* same thing */\n" + NAIVE.replace("    ", "\t").replace(" = ", "=") + "// end\n"
    assert normalize(respelled, "c") == normalize(NAIVE, "c")
    assert source_hash(respelled, "c") == source_hash(NAIVE, "c")
    assert source_hash(NAIVE.replace("k++", "k += 2"), "c") != source_hash(NAIVE, "c")
    assert normalize("def f(x):  # hi\n    return x\n", "python") == normalize("def f(x):\n    return x\n", "python")
