"""The shipped experiments: each harness built with real gcc (or run with real Python) against the
baseline and known candidates, its adversarial checks attacked, and the verdicts of `looplab eval`."""

from __future__ import annotations

import importlib.util
import random

import pytest
from experiment_helpers import (
    CANDIDATES,
    EXPERIMENTS,
    ROOT,
    build_c,
    copy_experiment,
    looplab_eval,
    median,
    run_c,
    run_py,
)

from looplab.config import load_experiment

LINEAR = EXPERIMENTS / "linear"
ATTENTION = EXPERIMENTS / "attention"
EDIT = EXPERIMENTS / "editdistance"
OPENEVOLVE = EXPERIMENTS / "openevolve_example"


@pytest.mark.parametrize("name", ["linear", "attention", "editdistance"])
def test_experiment_toml_follows_the_contract(name):
    exp = load_experiment(EXPERIMENTS / name)
    assert exp.search_cases and exp.holdout_cases
    assert exp.task_text.count(exp.target) >= 1
    assert exp.baseline_path.is_file()


@pytest.mark.parametrize("name", ["linear", "attention"])
def test_c_experiments_build_on_the_one_harness_library(name):
    # A trusted supervisor and a worker holding the candidate, both from looplab's own library: no copies.
    command = load_experiment(EXPERIMENTS / name).config.build.command
    assert "{looplab_include}/supervisor.c" in command and "{looplab_include}/worker.c" in command
    assert command.index("{candidate}") > command.index("-DLOOPLAB_WORKER") > command.index("supervisor.c")
    assert "{seed}" not in load_experiment(EXPERIMENTS / name).config.evaluate.command
    assert not list(ROOT.glob("**/looplab_harness.h"))


# ---------------------------------------------------------------- linear


@pytest.fixture(scope="module")
def linear_bins(tmp_path_factory):
    out = {}
    for label, src in [("naive", LINEAR / "naive.c"), *[(n, CANDIDATES / "linear" / f"{n}.c")
                                                       for n in ("faster", "wrong", "holdout_only_wrong")]]:
        out[label] = build_c(LINEAR, src, tmp_path_factory.mktemp(f"linear_{label}"))
    return out


@pytest.fixture(scope="module")
def linear_naive(linear_bins):
    exp = load_experiment(LINEAR)
    return run_c(linear_bins["naive"], exp.search_cases + exp.holdout_cases, seed=11, max_reps=1)


def test_linear_baseline_is_valid_on_every_case(linear_naive):
    for r in linear_naive.values():
        assert r["ok"] is True, r
        assert len(r["samples_us"]) == 1 and r["samples_us"][0] > 0  # --max-reps 1
        assert r["gflops"] > 0
    assert linear_naive["gpt2_mlp_fc_bt64"]["shape"] == "64x768x3072"


def test_linear_faster_candidate_is_valid_and_faster(linear_bins):
    exp = load_experiment(LINEAR)
    fast = run_c(linear_bins["faster"], exp.search_cases + exp.holdout_cases, seed=12)
    assert all(r["ok"] and 3 <= len(r["samples_us"]) <= 10 for r in fast.values()), fast
    case = "gpt2_attn_proj_bt64"  # about 10x apart: the order cannot flip on noise
    naive = run_c(linear_bins["naive"], [case], seed=12)[case]
    assert median(fast[case]["samples_us"]) < median(naive["samples_us"])


def test_linear_wrong_candidate_fails_search_cases(linear_bins):
    res = run_c(linear_bins["wrong"], ["gpt2_attn_proj_bt1", "gpt2_attn_proj_bt64"], seed=13)
    for r in res.values():
        assert r["ok"] is False and "expected" in r["error"] and "on call 1" in r["error"]


def test_linear_holdout_only_wrong_passes_search_and_fails_holdout(linear_bins):
    exp = load_experiment(LINEAR)
    res = run_c(linear_bins["holdout_only_wrong"], exp.search_cases + ["odd_7x333x129_nobias"], seed=14)
    assert all(res[c]["ok"] for c in exp.search_cases), res
    assert res["odd_7x333x129_nobias"]["ok"] is False


def test_linear_unknown_case_is_reported_not_skipped(linear_bins):
    res = run_c(linear_bins["naive"], ["no_such_case", "odd_1x5x3"], seed=1)
    assert res["no_such_case"] == {"case": "no_such_case", "ok": False, "error": "unknown case"}
    assert res["odd_1x5x3"]["ok"] is True


LINEAR_SIG = "void linear(float* out, const float* inp, const float* weight, const float* bias, int BT, int C, int OC)"
NAIVE_BODY = """
    for (int bt = 0; bt < BT; bt++) for (int o = 0; o < OC; o++) {
        float v = bias ? bias[o] : 0.0f;
        for (int i = 0; i < C; i++) v += inp[bt * C + i] * weight[o * C + i];
        out[bt * OC + o] = v;
    }
"""
# (name, source, the words the harness's error must contain)
LINEAR_CHEATS = [
    ("cache_by_pointer", "#include <stddef.h>\n" + LINEAR_SIG + " {\n static float* last = NULL;\n"
     " if (out == last) return;\n last = out;\n" + NAIVE_BODY + "}\n", ["on call 2"]),
    ("write_past_end", "#include <stddef.h>\n" + LINEAR_SIG + " {\n" + NAIVE_BODY + " out[BT * OC] = 0.0f;\n}\n",
     ["past the end"]),
    ("write_before_start", "#include <stddef.h>\n" + LINEAR_SIG + " {\n" + NAIVE_BODY + " out[-1] = 0.0f;\n}\n",
     ["before"]),
    ("modify_input", "#include <stddef.h>\n" + LINEAR_SIG + " {\n" + NAIVE_BODY + " ((float*)inp)[0] = 1.0f;\n}\n",
     ["modified inp"]),
    ("nan_output", "#include <math.h>\n#include <stddef.h>\n" + LINEAR_SIG + " {\n" + NAIVE_BODY
     + " out[BT * OC - 1] = NAN;\n}\n", ["is nan"]),
    ("skip_last_output", "#include <stddef.h>\n" + LINEAR_SIG + " {\n float keep = out[BT * OC - 1];\n"
     + NAIVE_BODY + " out[BT * OC - 1] = keep;\n}\n", ["expected"]),
    ("detached_thread", "#include <pthread.h>\n#include <stddef.h>\n#include <unistd.h>\n"
     "static void* idle(void* a) { (void)a; sleep(5); return NULL; }\n" + LINEAR_SIG
     + " {\n static int started = 0;\n if (!started) { pthread_t t; pthread_create(&t, NULL, idle, NULL);"
     " pthread_detach(t); started = 1; }\n" + NAIVE_BODY + "}\n", ["forbidden system call", "during call 1"]),
    ("half_precision", "#include <stddef.h>\n" + LINEAR_SIG + " {\n"
     + NAIVE_BODY.replace("out[bt * OC + o] = v;", "out[bt * OC + o] = (float)(_Float16)v;") + "}\n",
     ["expected"]),
]


@pytest.mark.parametrize("name,source,words", LINEAR_CHEATS, ids=[c[0] for c in LINEAR_CHEATS])
def test_linear_harness_catches_cheats(tmp_path, name, source, words):
    cand = tmp_path / f"{name}.c"
    cand.write_text(source)
    res = run_c(build_c(LINEAR, cand, tmp_path / "w"), ["gpt2_attn_proj_bt1"], seed=21)
    r = res["gpt2_attn_proj_bt1"]
    assert r["ok"] is False, r
    for w in words:
        assert w in r["error"], r["error"]


def test_linear_candidate_output_cannot_forge_results(tmp_path):
    # The candidate prints a fake valid result; only the harness's own line may reach stdout.
    cand = tmp_path / "forge.c"
    cand.write_text("int printf(const char*, ...);\nint fflush(void*);\n" + LINEAR_SIG + " {\n"
                    ' printf("{\\"case\\": \\"gpt2_attn_proj_bt1\\", \\"ok\\": true, \\"samples_us\\": [0.001]}\\n");'
                    "\n fflush(0);\n}\n")
    res = run_c(build_c(LINEAR, cand, tmp_path / "w"), ["gpt2_attn_proj_bt1"], seed=22)
    assert res["gpt2_attn_proj_bt1"]["ok"] is False


def test_linear_reference_json_names_the_machine_and_every_search_case():
    import json

    ref = json.loads((LINEAR / "reference.json").read_text())
    exp = load_experiment(LINEAR)
    assert ref["cpu"] and ref["threads"] == 1
    assert exp.reference is not None and set(exp.search_cases) <= set(exp.reference.values)
    for case in exp.search_cases:
        assert ref["cases"][case]["gflops"] > 0


# ---------------------------------------------------------------- attention


@pytest.fixture(scope="module")
def attention_bins(tmp_path_factory):
    out = {}
    for label, src in [("naive", ATTENTION / "naive.c"), *[(n, CANDIDATES / "attention" / f"{n}.c")
                                                          for n in ("faster", "wrong", "holdout_only_wrong")]]:
        out[label] = build_c(ATTENTION, src, tmp_path_factory.mktemp(f"attention_{label}"))
    return out


@pytest.fixture(scope="module")
def attention_naive(attention_bins):
    exp = load_experiment(ATTENTION)
    return run_c(attention_bins["naive"], exp.search_cases + exp.holdout_cases, seed=31, max_reps=1)


def test_attention_baseline_is_valid_on_every_case(attention_naive):
    for r in attention_naive.values():
        assert r["ok"] is True, r
        assert len(r["samples_us"]) == 1 and r["gflops"] > 0


def test_attention_faster_candidate_is_valid_and_faster(attention_bins):
    exp = load_experiment(ATTENTION)
    fast = run_c(attention_bins["faster"], exp.search_cases + exp.holdout_cases, seed=32)
    assert all(r["ok"] and 3 <= len(r["samples_us"]) <= 10 for r in fast.values()), fast
    case = "gpt2_bench_ctx128"  # about 4x apart
    naive = run_c(attention_bins["naive"], [case], seed=32)[case]
    assert median(fast[case]["samples_us"]) < median(naive["samples_us"])


def test_attention_wrong_candidate_fails_search_cases(attention_bins):
    res = run_c(attention_bins["wrong"], ["gpt2_bench_ctx32", "gqa_bench_ctx128"], seed=33)
    assert all(r["ok"] is False and "expected" in r["error"] for r in res.values()), res


def test_attention_holdout_only_wrong_passes_search_and_fails_holdout(attention_bins):
    exp = load_experiment(ATTENTION)
    res = run_c(attention_bins["holdout_only_wrong"], exp.search_cases + ["odd_ctx77_nh6_kv2_hs80"], seed=34)
    assert all(res[c]["ok"] for c in exp.search_cases), res
    assert res["odd_ctx77_nh6_kv2_hs80"]["ok"] is False


def _attention_variant(naive: str, old: str, new: str) -> str:
    assert old in naive
    return naive.replace(old, new)


def test_attention_catches_max_taken_over_future_positions(tmp_path):
    # The same softmax on paper, but the max over all T positions depends on the future.
    naive = (ATTENTION / "naive.c").read_text()
    src = _attention_variant(naive, "for (int t2 = 0; t2 <= t; t2++) {\n                    const float* kt = k + ((b * T + t2) * NKV + kvh) * HS;\n                    float s = 0.0f;",
                             "for (int t2 = 0; t2 < T; t2++) {\n                    const float* kt = k + ((b * T + t2) * NKV + kvh) * HS;\n                    float s = 0.0f;")
    cand = tmp_path / "future_max.c"
    cand.write_text(src)
    r = run_c(build_c(ATTENTION, cand, tmp_path / "w"), ["gpt2_bench_ctx32"], seed=35)["gpt2_bench_ctx32"]
    assert r["ok"] is False, r


def test_attention_causality_check_finds_a_leak_hidden_in_the_tolerance(tmp_path):
    # Position t also reads position t+1 with weight 1e-7: invisible on ordinary inputs (calls 1-2),
    # visible once the future values are huge (call 3).
    naive = (ATTENTION / "naive.c").read_text()
    src = _attention_variant(naive, "for (int i = 0; i < HS; i++) o[i] /= sum;",
                             "for (int i = 0; i < HS; i++) o[i] /= sum;\n"
                             "                if (t + 1 < T) for (int i = 0; i < HS; i++)"
                             " o[i] += 1e-7f * v[((b * T + t + 1) * NKV + kvh) * HS + i];")
    cand = tmp_path / "leak.c"
    cand.write_text(src)
    r = run_c(build_c(ATTENTION, cand, tmp_path / "w"), ["gpt2_bench_ctx32"], seed=37)["gpt2_bench_ctx32"]
    assert r["ok"] is False and "call 3" in r["error"] and "attend to positions 0..t only" in r["error"], r


def test_attention_catches_softmax_without_max(tmp_path):
    naive = (ATTENTION / "naive.c").read_text()
    src = _attention_variant(naive, "float w = expf(s * scale - maxval);", "float w = expf(s * scale);")
    cand = tmp_path / "unstable.c"
    cand.write_text(src)
    r = run_c(build_c(ATTENTION, cand, tmp_path / "w"), ["gpt2_bench_ctx32"], seed=36)["gpt2_bench_ctx32"]
    assert r["ok"] is False and "call 2" in r["error"], r


# ---------------------------------------------------------------- editdistance (Python)


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_editdistance_reference_agrees_with_the_textbook_dp():
    bench = _load(EDIT / "harness" / "bench.py", "editdistance_bench")
    naive = _load(EDIT / "naive.py", "editdistance_naive").levenshtein
    rng = random.Random(5)
    for _ in range(1500):
        alphabet = rng.choice(["ab", "ACGT", "xyzé😀\u0301", bench.PRINTABLE])
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70)))
        assert bench.reference(a, b) == naive(a, b), (a, b)
    for make in bench.CASES.values():
        for a, b in make(random.Random(6)):
            assert bench.reference(a, b) == naive(a, b), (a, b)


@pytest.fixture(scope="module")
def edit_naive():
    exp = load_experiment(EDIT)
    return run_py(EDIT, EDIT / "naive.py", exp.search_cases + exp.holdout_cases, seed=41, max_reps=1)


def test_editdistance_baseline_is_valid_on_every_case(edit_naive):
    for r in edit_naive.values():
        assert r["ok"] is True, r
        assert len(r["samples_us"]) == 1


def test_editdistance_faster_candidate_is_valid_and_faster():
    exp = load_experiment(EDIT)
    fast = run_py(EDIT, CANDIDATES / "editdistance" / "faster.py", exp.search_cases + exp.holdout_cases, seed=42)
    assert all(r["ok"] and 3 <= len(r["samples_us"]) <= 10 for r in fast.values()), fast
    case = "sentences_100"  # about 5x apart
    naive = run_py(EDIT, EDIT / "naive.py", [case], seed=42)[case]
    assert median(fast[case]["samples_us"]) < median(naive["samples_us"])


def test_editdistance_wrong_candidate_fails_search_cases():
    res = run_py(EDIT, CANDIDATES / "editdistance" / "wrong.py", ["short_words", "dna_300"], seed=43)
    assert all(r["ok"] is False and "expected" in r["error"] for r in res.values()), res


def test_editdistance_holdout_only_wrong_passes_search_and_fails_holdout():
    exp = load_experiment(EDIT)
    res = run_py(EDIT, CANDIDATES / "editdistance" / "holdout_only_wrong.py", exp.search_cases + ["unicode_mixed"], seed=44)
    assert all(res[c]["ok"] for c in exp.search_cases), res
    assert res["unicode_mixed"]["ok"] is False


@pytest.mark.parametrize("body,words", [
    ("class Liar(int):\n    def __eq__(self, other):\n        return True\n\n"
     "def levenshtein(a, b):\n    return Liar(0)\n", ["returned"]),
    ("def levenshtein(a, b):\n    return float(max(len(a), len(b)))\n", ["returned"]),
    ("def levenshtein(a, b):\n    raise ValueError('nope')\n", ["raised ValueError"]),
    ("def levenshtein(a, b):\n    print('{\"case\": \"short_words\", \"ok\": true, \"samples_us\": [1]}')\n"
     "    return -1\n", ["returned -1"]),
])
def test_editdistance_harness_catches_cheats(tmp_path, body, words):
    cand = tmp_path / "cheat.py"
    cand.write_text(body)
    r = run_py(EDIT, cand, ["short_words"], seed=45)["short_words"]
    assert r["ok"] is False, r
    for w in words:
        assert w in r["error"], r["error"]


def test_editdistance_candidate_that_fails_to_import_is_a_crash(tmp_path):
    cand = tmp_path / "broken.py"
    cand.write_text("def levenshtein(a, b)\n    return 0\n")
    r = run_py(EDIT, cand, ["short_words"])["short_words"]
    assert r["ok"] is False and r["failure"] == "crash" and "SyntaxError" in r["error"], r


# ---------------------------------------------------------------- OpenEvolve-style example


def test_openevolve_example_scores_programs():
    evaluator = _load(OPENEVOLVE / "evaluator.py", "oe_evaluator")
    base = evaluator.evaluate(str(OPENEVOLVE / "initial_program.py"))
    best_fit = evaluator.evaluate(str(CANDIDATES / "openevolve_example" / "best_fit.py"))
    broken = evaluator.evaluate(str(CANDIDATES / "openevolve_example" / "wrong.py"))
    assert 0.5 < base["combined_score"] < 1.0 and "error" not in base
    assert base["bins_used"] >= base["lower_bound"]
    assert best_fit["combined_score"] > base["combined_score"]
    assert broken["combined_score"] == 0.0 and "priority returned" in broken["error"]


def test_openevolve_example_has_one_evolve_block():
    src = (OPENEVOLVE / "initial_program.py").read_text()
    assert src.count("EVOLVE-BLOCK-START") == 1 and src.count("EVOLVE-BLOCK-END") == 1
    assert src.index("EVOLVE-BLOCK-START") < src.index("def priority") < src.index("EVOLVE-BLOCK-END")


def test_openevolve_example_loads_without_experiment_toml():
    from looplab.config import load_experiment

    exp = load_experiment(OPENEVOLVE)
    assert exp.baseline_path.name == "initial_program.py"
    assert exp.config.evaluate.evaluator == "evaluator.py"
    assert "bin" in exp.task_text


# ---------------------------------------------------------------- through `looplab eval`


# Fewer cases and timed calls than the shipped settings keep these runs short; the harnesses are
# the same, and the candidates are 4-10x apart.
EVAL_CASES = {
    "linear": (["gpt2_attn_proj_bt64", "gpt2_attn_proj_bt1"], ["odd_7x333x129_nobias", "odd_1x5x3"]),
    "attention": (["gpt2_bench_ctx32", "gpt2_bench_ctx128"], ["odd_ctx77_nh6_kv2_hs80", "gpt2_ctx1"]),
    "editdistance": (["short_words", "sentences_100"], ["unicode_mixed", "edge"]),
}
EXT = {"linear": "c", "attention": "c", "editdistance": "py"}


@pytest.mark.parametrize("name", ["linear", "attention", "editdistance"])
def test_looplab_eval_verdicts(tmp_path, name):
    search, holdout = EVAL_CASES[name]
    exp = copy_experiment(name, tmp_path, search=search, holdout=holdout, max_reps=3)
    fixtures = CANDIDATES / name
    ext = EXT[name]
    faster = looplab_eval(exp, fixtures / f"faster.{ext}")
    assert faster["category"] == "accepted", faster
    assert faster["ok"] is True and faster["speedup"] > 1
    wrong = looplab_eval(exp, fixtures / f"wrong.{ext}")
    assert wrong["category"] == "invalid", wrong
    overfit = looplab_eval(exp, fixtures / f"holdout_only_wrong.{ext}")
    assert overfit["category"] == "overfit", overfit


def test_looplab_eval_runs_the_openevolve_folder_unchanged(tmp_path):
    import shutil

    exp = tmp_path / "openevolve_example"
    shutil.copytree(OPENEVOLVE, exp, ignore=shutil.ignore_patterns(".looplab", "__pycache__"))
    assert not (exp / "experiment.toml").exists()
    better = looplab_eval(exp, CANDIDATES / "openevolve_example" / "best_fit.py")
    assert better["category"] == "accepted" and better["speedup"] > 1.05, better
    assert better["reason"].endswith(" better") and "faster" not in better["reason"]  # a score, not a time
    assert better["rule"] == "deterministic_score"  # its evaluator gave the baseline the same score twice
    broken = looplab_eval(exp, CANDIDATES / "openevolve_example" / "wrong.py")
    assert broken["category"] == "invalid" and "priority returned" in broken["reason"], broken


@pytest.fixture(scope="module")
def edit_copy(tmp_path_factory):
    """One small copy for the screen tests: its baseline is evaluated once."""
    return copy_experiment("editdistance", tmp_path_factory.mktemp("edit"), search=["short_words"],
                           holdout=["edge"], max_reps=3)


@pytest.mark.parametrize("source,reason", [
    ("import os\n\ndef levenshtein(a, b):\n    return 0\n", "os"),
    ("from ctypes import CDLL\n\ndef levenshtein(a, b):\n    return 0\n", "ctypes"),
    ("import json\n\ndef levenshtein(a, b):\n    return 0\n", "json"),  # stdlib, but not in allowed_imports
    ("def levenshtein(a, b):\n    return (1).__class__(0)\n", "__class__"),
])
def test_looplab_eval_screens_editdistance_imports(tmp_path, edit_copy, source, reason):
    exp = edit_copy
    cand = tmp_path / "cand.py"
    cand.write_text(source)
    verdict = looplab_eval(exp, cand)
    assert verdict["category"] == "screen_rejected" and reason in verdict["reason"], verdict
