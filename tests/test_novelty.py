import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from looplab.records import Outcome
from looplab.screen import novelty
from looplab.screen.novelty import NoveltyIndex, fingerprint, is_near, lex, shingles, similarity

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
# Shaped like OpenEvolve's function_minimization: fixed code around one EVOLVE-BLOCK.
PROGRAM = '''"""Find the minimum of a function with many local minima."""
import numpy as np


# EVOLVE-BLOCK-START
def search_algorithm(iterations=1000, bounds=(-5, 5), label="random search"):
    """A simple random search."""
    best_x = np.random.uniform(bounds[0], bounds[1])
    best_y = np.random.uniform(bounds[0], bounds[1])
    best_value = evaluate_function(best_x, best_y)
    for _ in range(iterations):
        x = np.random.uniform(bounds[0], bounds[1])
        y = np.random.uniform(bounds[0], bounds[1])
        value = evaluate_function(x, y)
        if value < best_value:
            best_value, best_x, best_y = value, x, y
    return best_x, best_y, best_value
# EVOLVE-BLOCK-END


def evaluate_function(x, y):
    """The function to minimise."""
    return np.sin(x) * np.cos(y) + np.sin(x * y) + (x**2 + y**2) / 20


def run_search():
    x, y, value = search_algorithm()
    print("found", x, y, value)
    return x, y, value
'''


def index_of(*sources, language="python", threshold=0.95):
    index = NoveltyIndex(language, threshold)
    for i, src in enumerate(sources):
        index.record(i, src, Outcome.SLOWER)
    return index


def test_a_changed_number_is_a_new_candidate():
    index = index_of(PROGRAM, threshold=0.85)  # loose: the structure alone would call it a copy
    tuned = PROGRAM.replace("iterations=1000", "iterations=20000")
    assert similarity(shingles(tuned, "python"), shingles(PROGRAM, "python")) > 0.85
    assert index.nearest(tuned) is None
    assert index.nearest(PROGRAM.replace("(-5, 5)", "(-5.0, 5)")) is None
    c_index = index_of(BASE, language="c")
    assert c_index.nearest(BASE.replace("float acc = 0.0f;", "float acc = 0.5f;")) is None
    assert c_index.nearest(BASE.replace("int i = 0", "int i = 1", 1)) is None


def test_a_changed_string_or_named_constant_is_a_new_candidate():
    index = index_of(PROGRAM.replace('"random search"', '"random walk"'))
    assert index.nearest(PROGRAM) is None
    flagged = PROGRAM.replace("return best_x, best_y, best_value", "return best_x, best_y, best_value, True")
    assert index_of(flagged).nearest(flagged.replace("True", "False")) is None
    # Names the candidate does not bind (a library's function) are not renamed away.
    assert index_of(PROGRAM).nearest(PROGRAM.replace("np.random.uniform", "np.random.normal")) is None
    imported = "from math import exp\n\n\ndef f(x):\n    y = exp(x)\n    return y * y\n"
    assert index_of(imported).nearest(imported.replace("exp", "log")) is None
    assert index_of(imported).nearest(imported.replace("y", "z")) == (0, 1.0)
    external = BASE.replace("float acc = 0.0f;", "float acc = fmaf(a[i], b[j], 0.0f);")
    assert index_of(external, language="c").nearest(external.replace("fmaf", "fmaxf3")) is None


def test_exact_repeats_and_renamed_or_reformatted_copies_are_duplicates():
    index = index_of(PROGRAM)
    assert index.nearest(PROGRAM) == (0, 1.0)
    renamed = PROGRAM.replace("best_value", "lowest").replace("best_x", "bx").replace("iterations", "steps")
    assert index.nearest(renamed) == (0, 1.0)
    cosmetic = PROGRAM.replace('"""A simple random search."""', '"""Random search, reworded."""') \
        .replace("        value = evaluate_function(x, y)", "        # score the point\n        value = evaluate_function(x,y)")
    assert index.nearest(cosmetic) == (0, 1.0)
    c_index = index_of(BASE, language="c")
    assert c_index.nearest("// cosmetic\n" + BASE.replace("float acc = 0.0f;", "float acc = 0.0f; /* init */")) \
        == (0, 1.0)
    assert c_index.nearest(BASE.replace("acc", "sum").replace("matmul", "mm")) == (0, 1.0)
    slightly = BASE.replace("k++", "k += 1")  # same literals, a little different structure
    assert c_index.nearest(slightly) is None or c_index.nearest(slightly)[1] < 1.0
    assert c_index.nearest(IKJ) is None and similarity(shingles(IKJ, "c"), shingles(BASE, "c")) < 0.7


def test_only_candidates_that_ran_and_were_valid_are_near_duplicate_targets():
    near = BASE.replace("acc", "total").replace("k++) acc", "k++)\n acc")
    for outcome in (Outcome.COMPILE_ERROR, Outcome.INVALID, Outcome.CRASH, Outcome.TIMEOUT, Outcome.OVERFIT,
                    Outcome.SCREEN_REJECTED, Outcome.DUPLICATE, Outcome.INFRA_ERROR):
        index = NoveltyIndex("c", 0.95)
        index.record(4, BASE, outcome)
        assert index.nearest(near) is None, outcome  # may be the repair of attempt 4
    for outcome in (Outcome.SLOWER, Outcome.ACCEPTED, Outcome.SPECIALIST, Outcome.BASELINE):
        index = NoveltyIndex("c", 0.95)
        index.record(4, BASE, outcome)
        assert index.nearest(near) == (4, 1.0), outcome


def test_only_the_evolve_block_is_compared():
    index = index_of(PROGRAM, threshold=0.85)
    outside = PROGRAM.replace('print("found", x, y, value)', 'print("found", x, y, value, sep=";")')
    assert index.nearest(outside) == (0, 1.0)  # the fixed code is not what the model proposes
    # A structural change inside a small block is a large change of the block, a small one of the file.
    rewritten = PROGRAM.replace("        if value < best_value:\n            best_value, best_x, best_y = value, x, y\n",
                                "        if value < best_value:\n            best_value = value\n"
                                "            best_x, best_y = x, y\n")
    whole = similarity(shingles(rewritten.replace("EVOLVE-BLOCK", "X"), "python"),
                       shingles(PROGRAM.replace("EVOLVE-BLOCK", "X"), "python"))
    block = similarity(shingles(rewritten, "python"), shingles(PROGRAM, "python"))
    assert whole > 0.85 > block and index.nearest(rewritten) is None
    assert fingerprint(PROGRAM, "python").literals == ("1000", "5", "5", '"random search"', *["0", "1"] * 4)


def test_lexer_drops_comments_and_docstrings_but_keeps_strings_that_hold_comment_marks():
    kinds = lex('x = "a # b"  # note\n"""doc"""\ny = f(\n    "arg"\n)\n', "python")
    assert ("lit", '"a # b"') in kinds and ("lit", '"arg"') in kinds and all("doc" not in t for _, t in kinds)
    c = lex('char *s = "a // b"; /* c */ int x = 0x1F; // d\n', "c")
    assert ("lit", '"a // b"') in c and ("lit", "0x1F") in c and not any(t in ("c", "d") for _, t in c)


def test_threshold_one_disables_near_duplicates():
    index = NoveltyIndex("c", threshold=1.0)
    index.add(1, BASE)
    assert index.nearest(BASE) is None


def test_the_store_is_read_at_the_first_lookup_not_before():
    calls = []

    def load():
        calls.append(1)
        return [(0, BASE), (3, IKJ)]

    index = NoveltyIndex("c", 0.95, load=load)
    index.record(5, BASE.replace("acc", "s"), Outcome.SLOWER)  # finished before the first lookup
    assert not calls
    assert index.nearest(BASE.replace("acc", "t")) == (0, 1.0) and len(index) == 3 and calls == [1]
    index.record(7, IKJ.replace("aik", "x"), Outcome.ACCEPTED)
    assert index.nearest(IKJ) == (3, 1.0) and calls == [1]


def test_prepared_in_a_thread_while_the_loop_looks_up_and_records_the_answers_are_the_same():
    import threading

    stored = [(i, f"{BASE}\n// variant {i}\nint v{i} = {i};") for i in range(1, 400)]
    release = threading.Event()

    def slow_load():
        release.wait(5)  # the loop's lookup and record arrive while the thread still reads the store
        return stored

    index = NoveltyIndex("c", 0.95, load=slow_load)
    builder = threading.Thread(target=index.prepare)
    builder.start()
    recorder = threading.Thread(target=index.record, args=(1000, IKJ, Outcome.SLOWER))  # finished meanwhile
    found: list = []
    looker = threading.Thread(target=lambda: found.append(index.nearest(IKJ.replace("aik", "y"))))
    recorder.start()
    recorder.join(0.2)
    looker.start()
    release.set()
    for thread in (builder, recorder, looker):
        thread.join(10)
    assert found == [(1000, 1.0)] and len(index) == 400


def test_a_store_that_fails_while_preparing_is_asked_again_at_the_first_lookup():
    calls = []

    def load():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("store went away")
        return [(0, BASE)]

    index = NoveltyIndex("c", 0.95, load=load)
    index.prepare()  # swallowed: nothing indexed yet
    assert index.nearest(BASE.replace("acc", "t")) == (0, 1.0) and calls == [1, 1]


def _programs(rng: random.Random, count: int) -> list[str]:
    """Near-identical programs (the adversarial case for a prefix filter): a few families of a base
    program, each member a few token edits and sometimes a changed literal away from the base."""
    words = [f"w{i}" for i in range(30)] + ["+", "*", "(", ")", ";", "=", "for", "if"]
    out = []
    for _family in range(3):
        base = [rng.choice(words) if rng.random() < 0.9 else str(rng.randrange(3)) for _ in range(rng.choice([40, 150]))]
        for _ in range(count // 3):
            tokens = list(base)
            for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 5, 12])):
                tokens[rng.randrange(len(tokens))] = rng.choice(words)
            if rng.random() < 0.3:
                tokens.insert(rng.randrange(len(tokens)), rng.choice(words))
            if rng.random() < 0.2:
                tokens.insert(rng.randrange(len(tokens)), str(rng.randrange(3)))
            out.append(" ".join(tokens))
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("scan", [0, novelty.SCAN])  # 0: every group through the bit-parallel count
def test_the_index_answers_exactly_what_comparing_with_every_valid_candidate_answers(scan, monkeypatch):
    monkeypatch.setattr(novelty, "SCAN", scan)
    rng = random.Random(12)
    sources = _programs(rng, 360)
    prints = [fingerprint(s, "c") for s in sources]
    stored = 260
    found = 0
    for threshold in (0.5, 0.8, 0.9, 0.95, 0.99):
        index = NoveltyIndex("c", threshold)
        for i in rng.sample(range(stored), stored):  # out of id order, as concurrent workers finish
            index.record(i, sources[i], Outcome.SLOWER if i % 5 else Outcome.INVALID)
        for probe in range(stored, len(sources)):
            hits = [(i, similarity(prints[probe].shingles, prints[i].shingles)) for i in range(stored)
                    if i % 5 and is_near(prints[probe], prints[i], threshold)]
            expected = max(hits, key=lambda x: (x[1], -x[0])) if hits else None
            assert index.nearest(sources[probe]) == expected, (threshold, probe)
            found += expected is not None
    assert 50 < found < 450  # both near duplicates and novel probes were checked


FIXTURE = Path(__file__).parent / "fixtures" / "matmul"


def test_a_repair_of_a_failed_attempt_is_evaluated_and_a_repeat_of_it_is_not(tmp_path):
    exp = tmp_path / "matmul"
    shutil.copytree(FIXTURE, exp)
    toml = exp / "experiment.toml"  # a program this small changes fast per token: a looser threshold
    text = toml.read_text()
    toml.write_text(text.replace("[search]\n", "[search]\nnear_duplicate = 0.85\n") if "[search]\n" in text
                    else text + "\n[search]\nnear_duplicate = 0.85\n")
    naive = (FIXTURE / "naive.c").read_text()
    fixed = naive.replace("float acc = 0.0f;", "float acc = 0.0f * 2.0f;")
    broken = fixed.replace("0.0f * 2.0f;", "0.0f * 2.0f")  # a missing semicolon
    swapped = fixed.replace("b[k * n + j]", "b[j * n + k]")  # wrong results
    assert all(is_near(fingerprint(fixed, "c"), fingerprint(f, "c"), 0.85) for f in (broken, swapped))

    def reply(code):
        return json.dumps({"content": f"Strategy: s\n\n```c\n{code}```\n"}) + "\n"

    replies = tmp_path / "r.jsonl"
    replies.write_text("".join(reply(c) for c in (broken, broken, swapped, fixed)))
    result = subprocess.run([sys.executable, "-m", "looplab.cli", "run", str(exp), "--model", f"replay:{replies}",
                             "--loop", "3"], capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [json.loads((exp / "runs" / f"{i:04d}" / "result.json").read_text()) for i in range(1, 5)]
    assert [r["outcome"] for r in rows[:3]] == ["compile_error", "duplicate", "invalid"]
    assert rows[1]["details"]["duplicate_of"] == 1  # the same failing program again: not worth a build
    assert rows[3]["outcome"] in ("slower", "accepted", "specialist") and rows[3]["cases"]  # the repair: judged
