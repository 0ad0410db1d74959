"""The hardware loop: experiments/rv32i_ice40 with the real open FPGA flow.

An RV32I core (Verilog, an EVOLVE-BLOCK region) is simulated with Verilator against a reference ISA
model on instruction tests and benchmark programs built with the RISC-V gcc, and scored by
Fmax (yosys + nextpnr-ice40, a fresh seed per evaluation, cross-checked with icetime) x IPC.
The slow tests judge real cores with `looplab eval`'s code path: a broken branch offset is invalid
with the diverging instruction, a pipelined core is accepted over place-and-route seeds, a core with
a shortcut that only the shown benchmarks tolerate is overfit, and the baseline against itself is
not accepted. They run test-sized rounds (2, at most 3) and their three judgements concurrently.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import private_dir

from looplab.acceptance.judge import judge
from looplab.config import Experiment, load_experiment
from looplab.evaluation.assess import evaluate_file
from looplab.executors import make_executor
from looplab.records import Outcome
from looplab.screen.policy import screen

ROOT = Path(__file__).resolve().parent.parent
EXP = ROOT / "experiments" / "rv32i_ice40"
HARNESS = EXP / "harness"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rv32i_ice40"
TOOLS = ["yosys", "nextpnr-ice40", "icetime", "verilator", "riscv64-unknown-elf-gcc", "perl", "g++", "make"]
MISSING = [t for t in TOOLS if shutil.which(t) is None]
needs_flow = pytest.mark.skipif(
    bool(MISSING), reason=f"the FPGA flow is not installed (missing {', '.join(MISSING)}): `make test-deps` installs "
    "yosys nextpnr-ice40 fpga-icestorm verilator gcc-riscv64-unknown-elf")


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"rv32i_ice40_{name}", HARNESS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    sys.path.insert(0, str(HARNESS))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(HARNESS))
    return mod


rv32i = _module("rv32i")
compare = _module("compare")
build = _module("build")

BASELINE = (EXP / "core.v").read_text()


def with_body(body: str) -> str:
    """The baseline file with its EVOLVE-BLOCK body replaced."""
    start = BASELINE.index("// EVOLVE-BLOCK-START\n") + len("// EVOLVE-BLOCK-START\n")
    return BASELINE[:start] + body + BASELINE[BASELINE.index("// EVOLVE-BLOCK-END"):]


PIPELINED = with_body((FIXTURES / "pipelined.v").read_text())
SHORTCUT = with_body((FIXTURES / "pipelined_shortcut.v").read_text())
# A wrong branch offset: the B-immediate used as if it were already shifted (offsets halved).
BROKEN_BRANCH = BASELINE.replace(
    "wire [31:0] imm_b = {{19{ir[31]}}, ir[31], ir[7], ir[30:25], ir[11:8], 1'b0};",
    "wire [31:0] imm_b = {{20{ir[31]}}, ir[31], ir[7], ir[30:25], ir[11:8]};")


# ---- quick: no synthesis ------------------------------------------------------------------------

def test_the_experiment_follows_the_contract():
    exp = load_experiment(EXP)
    assert exp.language == "verilog" and exp.ext == "v"
    assert exp.search_cases == ["qsort", "crc32", "matmul"]
    assert set(exp.holdout_cases) == {"sieve", "recurse", "strsearch"}
    assert set(exp.search_cases + exp.holdout_cases) == set(build.BENCHMARKS)
    task = exp.task_text
    assert all(c in task for c in exp.search_cases)
    assert not any(c in task for c in exp.holdout_cases), "EXPERIMENT.md must not name the holdout programs"
    assert exp.config.objective.kind == "score" and exp.config.objective.noise == "noisy"
    assert exp.config.objective.direction == "maximize"


def test_a_first_difference_names_the_instruction_register_and_values():
    want = [rv32i.trace_line(0x100, 0x00b50633, 12, 7), rv32i.trace_line(0x104, 0x40c5d6b3, 13, 0xFFFFFFFF)]
    assert compare.first_trace_difference(want, want + ["00000108 0000006f 00 00000000"]) is None
    got = [want[0], rv32i.trace_line(0x104, 0x40c5d6b3, 13, 1)]
    msg = compare.first_trace_difference(want, got)
    assert msg == ("first diverging instruction at pc 0x00000104 (sra a3,a1,a2), retired instruction #2: "
                   "expected x13(a3)=0xffffffff, got x13(a3)=0x00000001")
    skipped = compare.first_trace_difference(want, [want[0], rv32i.trace_line(0x10c, 0x00000013, 0, 0)])
    assert "expected pc 0x00000104 (sra a3,a1,a2" in skipped and "retired pc 0x0000010c" in skipped
    short = compare.first_trace_difference(want, want[:1])
    assert "retired only 1 of the program's 2 instructions" in short
    stores = [rv32i.store_line(0x204, 0b0010, 0xAB00)]
    msg = compare.first_store_difference(stores, [rv32i.store_line(0x200, 0b0010, 0xAB00)], [0x140], {0x140: 0x00b500a3})
    assert msg == ("first diverging store: store #1, by pc 0x00000140 (sb a1,1(a0)): expected mem[0x00000204] "
                   "strobes 2 <= 0x0000ab00, got mem[0x00000200] strobes 2 <= 0x0000ab00")


def test_the_reference_model_refuses_what_the_machine_does_not_do():
    def image(*words: int) -> bytes:
        return b"".join(w.to_bytes(4, "little") for w in words)
    with pytest.raises(rv32i.Fault, match="illegal instruction 0x00000000 at pc 0x00000000"):
        rv32i.run(image(0))
    with pytest.raises(rv32i.Fault, match="misaligned 4-byte load"):
        rv32i.run(image(0x00102083))  # lw ra, 1(zero)
    with pytest.raises(rv32i.Fault, match="no halt"):
        rv32i.run(image(0x0000006F), max_instructions=100)  # j .


@pytest.mark.parametrize("source, what", [
    ("    initial $display(\"hi\");\n", "$display"),
    ("    `define FAST 1\n", "`"),
    ("    wire w; assign #1 w = clk;\n", "#"),
    ("    (* keep *) wire w;\n", "(*"),
    ("    SB_PLL40_CORE pll ();\n", "SB_PLL40_CORE"),
])
def test_the_rules_refuse_simulation_only_and_vendor_constructs(source: str, what: str):
    candidate = BASELINE.replace("    integer k;\n", "    integer k;\n" + source)
    problem = build.region_problem(candidate)
    assert problem and repr(what).strip("'") in problem and problem.startswith("core.v:")
    policy = load_experiment(EXP).config.screen
    verdict = screen(candidate, language="verilog", policy=policy, baseline=BASELINE)
    assert verdict is not None and verdict.rule == "forbidden pattern"
    assert screen(BASELINE, language="verilog", policy=policy, baseline=BASELINE) is None
    assert build.region_problem(BASELINE) is None
    # comments are free in the build's own check (the screen stays strict)
    assert build.region_problem(BASELINE.replace("    integer k;\n", "    integer k;  // no $display, no #1\n")) is None


@needs_flow
def test_the_reference_model_agrees_with_the_programs_run_natively(tmp_path: Path):
    """Each benchmark built for RV32I and run on rv32i.py prints what the same C prints on the host."""
    progs = build.PROGRAMS
    for name in build.BENCHMARKS:
        native = tmp_path / name
        subprocess.run(["gcc", "-O1", "-DNATIVE", "-I", str(progs), "-o", str(native), str(progs / f"{name}.c")],
                       check=True)
        printed = [int(x) for x in subprocess.run([str(native)], capture_output=True, text=True, check=True).stdout.split()]
        image = build.build_program(name, tmp_path).read_bytes()
        res = rv32i.run(image)
        assert res.exit_code == 0 and res.outputs == printed, name
        assert 15_000 < res.instret < 80_000, (name, res.instret)
    for name in build.ISA_TESTS:  # the self-checking tests pass on the reference model
        assert rv32i.run(build.build_program(name, tmp_path).read_bytes()).exit_code == 0, name


# ---- slow: synthesis, simulation, place and route -------------------------------------------------

def run_build(tmp: Path, source: str, programs: list[str] | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp / "core.v").write_text(source)
    cmd = [sys.executable, str(HARNESS / "build.py"), "--candidate", str(tmp / "core.v"), "--out", str(tmp / "out")]
    proc = subprocess.run(cmd + (["--programs", *programs] if programs else []), capture_output=True, text=True,
                          timeout=600)
    results = tmp / "out" / "results.json"
    return proc, json.loads(results.read_text()) if results.exists() else {}


@needs_flow
@pytest.mark.slow
def test_a_derived_clock_or_a_latch_breaks_the_design_rules(tmp_path: Path):
    divided = BASELINE.replace("    integer k;\n", "    integer k;\n    reg half = 1'b0;\n"
                               "    always @(posedge clk) half <= ~half;\n").replace(
        "    always @(posedge clk) begin\n        if (reset) begin", "    always @(posedge half) begin\n        if (reset) begin")
    (tmp_path / "a").mkdir()
    proc, results = run_build(tmp_path / "a", divided, ["isa_alu"])
    assert proc.returncode == 0, proc.stderr
    assert "clocked by something other than clk" in results["design_error"]
    latch = BASELINE.replace("    integer k;\n", "    integer k;\n    reg [31:0] held;\n"
                             "    always @(*) if (state == EXEC) held = rs1v;\n")
    (tmp_path / "b").mkdir()
    proc, _ = run_build(tmp_path / "b", latch, ["isa_alu"])
    assert proc.returncode == 1 and "infers a latch" in proc.stderr, proc.stderr


def copy_experiment(dest: Path) -> Experiment:
    """A private copy with test-sized rounds (looplab eval writes .looplab/ into the folder)."""
    shutil.copytree(EXP, dest, ignore=shutil.ignore_patterns(".looplab", "runs", "__pycache__", "winners"))
    toml = dest / "experiment.toml"
    text = re.sub(r"^rounds = \d+", "rounds = 2", toml.read_text(), flags=re.M)
    toml.write_text(re.sub(r"^max_rounds = \d+", "max_rounds = 3", text, flags=re.M))
    return load_experiment(dest)


@pytest.fixture(scope="module")
def judged():
    """One private experiment; the baseline evaluated once, then three judgements run concurrently."""
    if MISSING:
        pytest.skip(f"the FPGA flow is not installed (missing {', '.join(MISSING)})")
    root = private_dir()
    exp = copy_experiment(root / "rv32i_ice40")

    async def identical():
        evaluator = make_executor(exp)
        return await judge(exp, evaluator, candidate_source=BASELINE, incumbent_source=BASELINE,
                           best_case_medians={}, noise="noisy")

    async def everything():
        broken = await evaluate_file(exp, BROKEN_BRANCH)  # measures the baseline first (store in the copy)
        better, shortcut, same = await asyncio.gather(evaluate_file(exp, PIPELINED), evaluate_file(exp, SHORTCUT),
                                                      identical())
        for name, r in (("broken", broken), ("better", better), ("shortcut", shortcut)):
            print(f"{name}: {r['category']} {r['reason'][:300]} ci={r['ci']} rounds={r['rounds']}")
        print(f"identical: {same.decision.outcome} {same.decision.reason} rounds={same.decision.rounds}")
        return {"broken": broken, "better": better, "shortcut": shortcut, "identical": same}

    yield asyncio.run(everything())
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_a_wrong_branch_offset_is_invalid_with_the_first_diverging_instruction(judged):
    r = judged["broken"]
    assert r["category"] == "invalid", r
    # every case fails on the first instruction test, at the first taken branch (start-up code's):
    # "case qsort: instruction test isa_alu: no halt within 7660 cycles (hang); first diverging instruction:
    #  retired instruction #36 (after pc 0x00000088 (bgeu t0,t1,0x98)): expected pc 0x00000098 (jal ra,0xa8,
    #  x1(ra)=0x0000009c), but the core retired pc 0x00000090 insn 0x00428293"
    reason = r["reason"]
    assert "instruction test isa_" in reason and "first diverging instruction" in reason, reason
    assert re.search(r"after pc 0x[0-9a-f]{8} \((beq|bne|blt|bge|bltu|bgeu) [a-z0-9]+,[a-z0-9]+,0x[0-9a-f]+\)\): "
                     r"expected pc 0x[0-9a-f]{8} .*but the core retired pc 0x[0-9a-f]{8}", reason), reason


@pytest.mark.slow
def test_the_baseline_against_itself_on_fresh_seeds_is_not_accepted(judged):
    v = judged["identical"]
    assert v.evaluation.ok and all(c.ok for c in v.evaluation.cases.values())
    d = v.decision
    assert d.rule == "noisy_score" and d.outcome == Outcome.SLOWER, (d.outcome, d.reason)
    assert d.rounds >= 2
    m = v.evaluation.cases["qsort"].metrics
    assert 40 < m["fmax_mhz"] < 80 and 0.2 < m["ipc"] < 0.3, m  # the baseline: ~55 MHz, CPI ~4.2
    assert m["fmax_mhz"] == min(m["nextpnr_mhz"], m["icetime_mhz"])


@pytest.mark.slow
def test_a_pipelined_core_is_accepted_with_its_interval_over_seeds(judged):
    r = judged["better"]
    assert r["category"] == "accepted" and r["rule"] == "noisy_score", r
    low, high = r["ci"]
    assert 1.3 < low <= r["speedup"] <= high, r  # about 2.1x: IPC 0.85 vs 0.24 at ~33 MHz vs ~55
    assert r["rounds"] >= 4  # two sessions of at least two rounds (pairs of seeds)
    assert r["holdout_ok"] is True
    for case in ("qsort", "crc32", "matmul"):
        assert r["cases"][case]["metrics"]["ipc"] > 0.8


@pytest.mark.slow
def test_a_core_that_only_suits_the_shown_benchmarks_is_overfit(judged):
    r = judged["shortcut"]
    assert r["category"] == "overfit", r
    assert r["holdout_ok"] is False
    assert all(c["ok"] for c in r["cases"].values())  # right on every shown benchmark
    assert "sieve" not in r["reason"]  # holdout names never reach the model
