"""experiments/rust_sort: a Rust crate of two files, judged by the C harness library with real cargo,
gcc and the sandbox.

The crate is built as a static library and linked into the library's seccomp-confined worker; the
supervisor (C, no Rust in it) makes the inputs, times each call and checks it against its own stable
sort. These tests run the shipped experiment on a private copy: the baseline passes, wrong and hostile
candidates fail for the right reason, a faster candidate that changes both files is accepted, and a
replayed `looplab run` builds, judges, archives and commits it.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import private_dir

from looplab import filesets
from looplab.config import Experiment, load_experiment
from looplab.evaluation.assess import evaluate_file

EXPERIMENT = Path(__file__).resolve().parent.parent / "experiments" / "rust_sort"
FILES = ["src/lib.rs", "src/sort.rs"]
# The build puts /usr/bin first: Debian's cargo, which the sandbox can see (a rustup install under
# /root or $HOME cannot be reached from inside it).
CARGO = shutil.which("cargo", path="/usr/bin:/bin:/usr/local/bin")

pytestmark = [
    pytest.mark.skipif(CARGO is None, reason="cargo is not installed (make system-deps installs Debian's cargo)"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed"),
    pytest.mark.skipif(not Path("/usr/include/seccomp.h").is_file(), reason="libseccomp-dev is not installed"),
]

# Faster, and changes both files: sort.rs becomes an LSD radix sort (the baseline is a merge sort) that
# skips the passes over digits no key differs in, counts each pass in four interleaved tables and keeps
# its scratch buffer between calls; lib.rs packs each pair into one u64 (one stream to move, not two)
# and finds the key bits that never differ.
FAST_LIB = """\
//! Stable sort of (key, value) pairs by key. Each pair travels as one u64 (key in the high half), so
//! a radix pass moves one stream instead of two; sort.rs sorts the packed pairs.

mod sort;

/// Below this many pairs, insertion sort on the two arrays directly.
const SMALL: usize = 48;

/// Sorts the `n` pairs `(keys[i], vals[i])` by key, ascending, in place, stably.
///
/// # Safety
/// `keys` and `vals` each point to `n` valid, writable `u32`s that do not overlap.
#[no_mangle]
pub unsafe extern "C" fn sort_pairs(keys: *mut u32, vals: *mut u32, n: usize) {
    if n < 2 {
        return;
    }
    let keys = std::slice::from_raw_parts_mut(keys, n);
    let vals = std::slice::from_raw_parts_mut(vals, n);
    if n < SMALL {
        insertion_sort(keys, vals);
        return;
    }
    // pack, and note which key bits differ at all: a digit no key differs in needs no pass
    let any = keys.iter().fold(0u32, |a, &k| a | k);
    let all = keys.iter().fold(!0u32, |a, &k| a & k);
    let mut pairs: Vec<u64> = keys.iter().zip(vals.iter()).map(|(&k, &v)| (k as u64) << 32 | v as u64).collect();
    if sort::sort_packed(&mut pairs, any ^ all) {
        for ((k, v), &p) in keys.iter_mut().zip(vals.iter_mut()).zip(pairs.iter()) {
            *k = (p >> 32) as u32;
            *v = p as u32;
        }
    }
}

fn insertion_sort(keys: &mut [u32], vals: &mut [u32]) {
    for i in 1..keys.len() {
        let (k, v) = (keys[i], vals[i]);
        let mut j = i;
        while j > 0 && keys[j - 1] > k {
            keys[j] = keys[j - 1];
            vals[j] = vals[j - 1];
            j -= 1;
        }
        keys[j] = k;
        vals[j] = v;
    }
}
"""

FAST_SORT = """\
//! LSD radix sort of packed pairs (key << 32 | value) on the key half, 8 bits per pass. Only the
//! digits in which some keys differ get a pass. Scratch memory is kept between calls.

use std::cell::RefCell;

const BITS: u32 = 8;
const B: usize = 1 << BITS;

thread_local! {
    static SCRATCH: RefCell<Vec<u64>> = RefCell::new(Vec::new());
}

/// Sorts `data` by its high 32 bits, stably. `differ`: the key bits not equal in every key.
/// Returns false when nothing had to move (every key equal).
pub fn sort_packed(data: &mut [u64], differ: u32) -> bool {
    if differ == 0 {
        return false;
    }
    SCRATCH.with(|s| {
        let mut scratch = s.borrow_mut();
        if scratch.len() < data.len() {
            scratch.resize(data.len(), 0);
        }
        let scratch = &mut scratch[..data.len()];
        let mut in_scratch = false;
        for pass in 0..4u32 {
            if (differ >> (BITS * pass)) & (B as u32 - 1) == 0 {
                continue; // every key has the same digit here
            }
            let shift = 32 + BITS * pass;
            if in_scratch {
                scatter(scratch, data, shift);
            } else {
                scatter(data, scratch, shift);
            }
            in_scratch = !in_scratch;
        }
        if in_scratch {
            data.copy_from_slice(scratch);
        }
    });
    true
}

/// One stable pass on the digit at `shift`: count (four interleaved tables, so runs of one digit do
/// not wait on each other), prefix sums, scatter.
fn scatter(src: &[u64], dst: &mut [u64], shift: u32) {
    let mut count = [[0usize; B]; 4];
    let chunks = src.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        count[0][((c[0] >> shift) as usize) & (B - 1)] += 1;
        count[1][((c[1] >> shift) as usize) & (B - 1)] += 1;
        count[2][((c[2] >> shift) as usize) & (B - 1)] += 1;
        count[3][((c[3] >> shift) as usize) & (B - 1)] += 1;
    }
    for &p in rest {
        count[0][((p >> shift) as usize) & (B - 1)] += 1;
    }
    let mut next = [0usize; B];
    let mut total = 0;
    for d in 0..B {
        next[d] = total;
        total += count[0][d] + count[1][d] + count[2][d] + count[3][d];
    }
    for &p in src {
        let d = ((p >> shift) as usize) & (B - 1);
        // in bounds: the counts add up to src.len() == dst.len()
        unsafe {
            *dst.get_unchecked_mut(*next.get_unchecked(d)) = p;
            *next.get_unchecked_mut(d) += 1;
        }
    }
}
"""

BASE_LIB = (EXPERIMENT / "src" / "lib.rs").read_text()


def with_lib(old: str, new: str) -> str:
    """The baseline with one change to src/lib.rs, packed as a candidate."""
    assert old in BASE_LIB, old
    return filesets.pack({"src/lib.rs": BASE_LIB.replace(old, new, 1),
                          "src/sort.rs": (EXPERIMENT / "src" / "sort.rs").read_text()})


def copy_experiment(root: Path) -> Path:
    dest = root / "rust_sort"
    shutil.copytree(EXPERIMENT, dest, ignore=shutil.ignore_patterns(
        ".looplab", "runs", "winners", "target", "incumbent.*", "SCORES.*", "MEMORY.*", "report.html"))
    return dest


@pytest.fixture(scope="module")
def experiment() -> Experiment:
    """One private copy for the `looplab eval` tests (eval records nothing; the build cache is shared)."""
    root = private_dir()
    yield load_experiment(copy_experiment(root))
    shutil.rmtree(root, ignore_errors=True)


def judge(exp: Experiment, source: str) -> dict:
    return asyncio.run(evaluate_file(exp, source))


def test_the_experiment_is_a_files_target_in_rust(experiment: Experiment) -> None:
    assert experiment.is_files and experiment.language == "rust"
    assert list(filesets.unpack(experiment.baseline_source)) == FILES
    assert "{looplab_include}/worker.c" in experiment.config.build.command
    assert "--offline" in experiment.config.build.command
    # the holdout cases are never named in what the model reads
    task = (EXPERIMENT / "EXPERIMENT.md").read_text()
    assert not [c for c in experiment.config.cases.holdout if re.search(rf"\b{c}\b", task)]


def test_the_baseline_files_pass_every_case(experiment: Experiment) -> None:
    verdict = judge(experiment, experiment.baseline_source)
    assert verdict["ok"], verdict
    assert verdict["category"] == "duplicate"  # the baseline itself: evaluated, never "better"
    assert set(verdict["cases"]) == set(experiment.config.cases.search)
    for name, case in verdict["cases"].items():
        assert case["ok"] and case["median"] > 0, (name, case)
        assert case["metrics"]["n"] > 0 and case["metrics"]["mpairs_per_s"] > 0
    build = next(p for p in (experiment.state_dir / "build").iterdir() if (p / "build.json").is_file())
    assert (build / "binary").is_file() and (build / "binary.worker").is_file()
    assert not (build / "target").exists()  # cargo's output is not kept in the build cache


def test_a_faster_candidate_changing_both_files_is_accepted(experiment: Experiment) -> None:
    fast = filesets.pack({"src/lib.rs": FAST_LIB, "src/sort.rs": FAST_SORT})
    verdict = judge(experiment, fast)
    assert verdict["category"] == "accepted", verdict
    assert verdict["speedup"] > 1.2 and verdict["ci"][0] > 1.02, verdict
    assert verdict["holdout_ok"] is True, verdict


# Sorts with the standard library's unstable sort: the right keys, but equal keys lose their order.
UNSTABLE = with_lib("""    sort::merge_sort(&mut pairs);""", """    pairs.sort_unstable_by_key(|p| p.0);""")

# The faster candidate with an unstable small-input path: faster and right on every search case
# (n >= 1000 never reaches it), wrong on small holdout inputs with repeated keys.
SELECTION_SORT = """fn insertion_sort(keys: &mut [u32], vals: &mut [u32]) {
    // selection sort: fewer moves, but not stable
    for i in 0..keys.len() {
        let mut m = i;
        for j in i + 1..keys.len() {
            if keys[j] < keys[m] {
                m = j;
            }
        }
        keys.swap(i, m);
        vals.swap(i, m);
    }
}
"""
UNSTABLE_SMALL = filesets.pack({"src/lib.rs": FAST_LIB[:FAST_LIB.index("fn insertion_sort")] + SELECTION_SORT,
                                "src/sort.rs": FAST_SORT})

PANICS = with_lib("""    let keys = std::slice::from_raw_parts_mut(keys, n);""",
                  """    let keys = std::slice::from_raw_parts_mut(keys, n);
    let probe = [0u32; 4];
    if probe[n % 5] != 0 {
        return; // never: out of bounds when n % 5 == 4 (262144 pairs), a panic, and the crate aborts
    }""")

PRINTS = with_lib("""    if n < 2 {""", """    println!("sorting {} pairs", n);
    if n < 2 {""")

EXPORTS = with_lib("""/// Sorts the `n` pairs""", """#[no_mangle]
pub extern "C" fn clock_gettime(_clock: i32, _ts: *mut u64) -> i32 {
    0
}

/// Sorts the `n` pairs""")

EARLY_CODE = with_lib("""/// Sorts the `n` pairs""", """#[used]
#[link_section = ".init_array"]
static EARLY: extern "C" fn() = early;
extern "C" fn early() {}

/// Sorts the `n` pairs""")

READS_HARNESS = with_lib("""mod sort;""", """mod sort;

const HARNESS: &str = include_str!(concat!("../harness/", "bench.c"));""")


@pytest.mark.parametrize("source, category, words", [
    (UNSTABLE, "invalid", "must be stable"),
    (UNSTABLE_SMALL, "overfit", ""),
    (PANICS, "crash", "status 134"),
    (PRINTS, "invalid", "forbidden system call write"),
    (EXPORTS, "compile_error", "exports clock_gettime: only sort_pairs"),
    (EARLY_CODE, "screen_rejected", "link_section"),
    (READS_HARNESS, "screen_rejected", "include"),
], ids=["unstable", "unstable_small_inputs", "panics", "prints", "exports_a_libc_name", "init_array",
        "include_str"])
def test_wrong_and_hostile_candidates_fail_for_the_right_reason(experiment: Experiment, source: str,
                                                                 category: str, words: str) -> None:
    verdict = judge(experiment, source)
    assert verdict["category"] == category, verdict
    assert words in verdict["reason"], verdict


def test_start_up_code_is_refused_by_the_build_even_past_the_screen() -> None:
    # The screen's patterns are a first filter; check_crate.py reads the crate's objects in the build.
    root = private_dir()
    try:
        exp_dir = copy_experiment(root)
        toml = exp_dir / "experiment.toml"
        toml.write_text(toml.read_text().replace('  "link_section", ', "  "))
        verdict = judge(load_experiment(exp_dir), EARLY_CODE)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert verdict["category"] == "compile_error", verdict
    assert "section .init_array" in verdict["reason"], verdict


def test_a_rust_files_candidate_is_built_judged_archived_and_committed() -> None:
    root = private_dir()
    try:
        exp_dir = copy_experiment(root)
        git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "the experiment"], check=True)
        reply = ("Strategy: pack each pair into one u64 and skip the digits no key differs in\n"
                 "Tags: radix, packing, pass skipping\n\n"
                 f"src/lib.rs\n```rust\n{FAST_LIB}```\n\nsrc/sort.rs\n```rust\n{FAST_SORT}```\n")
        replies = root / "replies.jsonl"
        replies.write_text(json.dumps({"content": reply, "usage": {"prompt_tokens": 900, "completion_tokens": 700}})
                           + "\n")
        proc = subprocess.run([sys.executable, "-m", "looplab.cli", "run", str(exp_dir), "--model",
                               f"replay:{replies}", "--loop", "1"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        result = json.loads((exp_dir / "runs" / "0001" / "result.json").read_text())
        assert result["outcome"] == "accepted", result
        live = exp_dir / "incumbent.files"
        assert (live / "src" / "lib.rs").read_text() == FAST_LIB
        assert (live / "src" / "sort.rs").read_text() == FAST_SORT
        winners = list((exp_dir / "winners").iterdir())
        assert len(winners) == 1 and winners[0].name.endswith(".files"), winners
        assert (winners[0] / "src" / "lib.rs").read_text() == FAST_LIB
        assert (winners[0] / "src" / "sort.rs").read_text() == FAST_SORT
        tracked = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True).stdout
        for f in FILES:
            assert f"rust_sort/winners/{winners[0].name}/{f}" in tracked, tracked
        committed = subprocess.run(["git", "-C", str(root), "show", "--name-only", "--format=%s", "HEAD"],
                                   capture_output=True, text=True).stdout
        assert "winner" in committed.splitlines()[0], committed
        assert f"rust_sort/winners/{winners[0].name}/src/sort.rs" in committed, committed
        # the experiment's own files stay the baseline; the winner lives beside them
        assert (exp_dir / "src" / "lib.rs").read_text() == BASE_LIB
    finally:
        shutil.rmtree(root, ignore_errors=True)
