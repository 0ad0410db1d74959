"""The build of one candidate core (deterministic, cached by looplab per source).

    python3 build.py --candidate core.v --out DIR

1. Builds every program (instruction tests and benchmarks) with the RISC-V cross compiler and runs
   each on the reference model (rv32i.py): the expected retirement trace and stores.
2. Synthesises top.v (the candidate core + the fixed RAM and top level) with yosys synth_ice40 for
   the iCE40-HX8K and checks the netlist: only iCE40 logic, carry, flip-flop and block-RAM cells,
   every flip-flop and RAM clocked by the one clock `clk`, no combinational loop.
3. Simulates what yosys elaborated (the core after `prep`, written back as Verilog, so simulation and
   synthesis read the same design) with Verilator on every program — registers without a reset or an
   initial value start random, as nothing promises them a value — and compares each run with the
   reference: the first diverging instruction or store, or a hang.

Writes DIR/top.json (for place and route) and DIR/results.json. A core that yosys cannot read is a
build failure (exit 1, the first errors on stderr, about the candidate only); everything else — a
design rule broken, a program failing — is recorded in results.json and reported per case by
evaluate.py, so holdout programs never show in a build's output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402
import rv32i  # noqa: E402

PROGRAMS = HERE / "programs"
# Instruction tests run for every case; any failure makes every case invalid.
ISA_TESTS = ["isa_alu", "isa_branch", "isa_mem", "isa_hazard"]
# Benchmarks: the search cases and (never named to the model) the holdout cases of experiment.toml.
BENCHMARKS = ["qsort", "crc32", "matmul", "sieve", "recurse", "strsearch"]
CFLAGS = ["-march=rv32i", "-mabi=ilp32", "-O2", "-nostdlib", "-ffreestanding", "-fno-builtin",
          "-fno-pic", "-Wall", "-Werror"]
SIM_SEED = 20240607  # registers without a reset or initial value start random (fixed seed: reproducible)
MAX_CPI = 20  # a run longer than MAX_CPI cycles per reference instruction (+ 1000) is a hang
# Rising-edge flip-flops with synchronous set/reset only: an asynchronous reset driven by logic, or a
# negative edge, is a path nextpnr does not time as the designer meant.
ALLOWED_CELLS = {"SB_LUT4", "SB_CARRY", "SB_RAM40_4K", "SB_IO", "SB_GB",
                 "SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFSS", "SB_DFFESR", "SB_DFFESS"}
# What the region may not contain (checked here on the code without comments; experiment.toml's
# [screen] refuses the same, comments included, before anything is built).
REGION_RULES = [
    (r"\$(?!(signed|unsigned|clog2)\b)\w*", "system tasks and functions other than $signed, $unsigned and $clog2"),
    (r"`", "compiler directives (`define, `ifdef, `include, ...)"),
    (r"#", "delays and parameter overrides (#)"),
    (r"\(\*(?!\s*\))", "attributes ((* ... *))"),
    (r"\bSB_\w+", "iCE40 primitives (SB_*): write plain Verilog and let yosys infer"),
]


def sh(cmd: list[str], cwd: Path | None = None, timeout: float = 300, env: dict | None = None
       ) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def perl_env() -> dict:
    """Verilator is a perl script; looplab's sandbox shows only a few files of /etc, and perl stops at
    the unreadable /etc/perl at the head of its @INC. Put the readable library dirs first."""
    r = sh(["perl", "-e", 'print join(":", grep { !m{^/etc} && -d } @INC)'])
    env = dict(os.environ)
    if r.returncode == 0 and r.stdout:
        env["PERL5LIB"] = r.stdout
    return env


def build_program(name: str, out: Path) -> Path:
    """ELF -> flat image -> $readmemh words; returns the image file."""
    src = PROGRAMS / (name + (".S" if name.startswith("isa_") else ".c"))
    extra = [str(PROGRAMS / "rt.c")] if src.suffix == ".c" else []
    elf = out / f"{name}.elf"
    r = sh(["riscv64-unknown-elf-gcc", *CFLAGS, "-I", str(PROGRAMS), "-T", str(PROGRAMS / "link.ld"),
            "-Wl,--no-warn-rwx-segments", "-o", str(elf), str(PROGRAMS / "crt0.S"), *extra, str(src), "-lgcc"])
    if r.returncode:
        raise SystemExit(f"harness error: building {name} failed:\n{r.stderr}")
    binfile = out / f"{name}.bin"
    r = sh(["riscv64-unknown-elf-objcopy", "-O", "binary", "-j", ".text", "-j", ".rodata", "-j", ".data",
            str(elf), str(binfile)])
    if r.returncode:
        raise SystemExit(f"harness error: objcopy {name} failed:\n{r.stderr}")
    return binfile


def write_hex(image: bytes, path: Path) -> None:
    image = image + bytes(-len(image) % 4)
    path.write_text("".join(f"{int.from_bytes(image[i:i + 4], 'little'):08x}\n" for i in range(0, len(image), 4)))


def yosys_errors(text: str, candidate: Path) -> str:
    """yosys's error lines, with the candidate's path shortened and nothing about other files."""
    if "selection is not empty" in text:
        return ("the core infers a latch or an asynchronous load (a signal not assigned on every path "
                "of an always @(*) block?): " + ", ".join(sorted(set(re.findall(r"\$\w*latch\w*|\$sr\b|\$aldffe?", text))))[:200])
    lines = [ln for ln in text.splitlines() if "ERROR" in ln or "rror:" in ln]
    if "check -assert" in text or "problems in 'check" in text:
        lines = [ln.strip() for ln in text.splitlines() if ln.startswith("Warning:")][:4] + lines
    text = "\n".join(lines[:4]) or "\n".join(text.strip().splitlines()[-3:])
    text = text.replace(str(candidate), "core.v")
    return re.sub(r"/\S*/(\w+\.v)", r"\1", text)[:800]


def region_problem(source: str) -> str | None:
    """The first construct the rules refuse inside the EVOLVE-BLOCK (comments and strings ignored)."""
    start, end = source.find("EVOLVE-BLOCK-START"), source.find("EVOLVE-BLOCK-END")
    if start < 0 or end < start:
        return "core.v must keep its EVOLVE-BLOCK-START / EVOLVE-BLOCK-END markers"
    region = source[source.find("\n", start) + 1:source.rfind("\n", 0, end)]
    code = re.sub(r'//[^\n]*|/\*.*?\*/|"[^"\n]*"', lambda m: re.sub(r"[^\n]", " ", m.group(0)), region, flags=re.S)
    for pattern, what in REGION_RULES:
        m = re.search(pattern, code)
        if m:
            line = source[:start].count("\n") + 2 + code[:m.start()].count("\n")
            return f"core.v:{line}: {m.group(0)!r} is not allowed: no {what}"
    return None


def synthesise(candidate: Path, out: Path) -> tuple[str | None, dict]:
    """synth_ice40 -> top.json; (compile error or None, stats)."""
    script = (f"read_verilog -defer {candidate} {HERE / 'ram.v'} {HERE / 'top.v'}; "
              "hierarchy -check -top top; proc; "
              "select -assert-none t:$dlatch t:$adlatch t:$dlatchsr t:$sr t:$aldff t:$aldffe; check -assert; "
              f"synth_ice40 -top top -json {out / 'top.json'}; stat")
    r = sh(["yosys", "-q", "-l", str(out / "synth.log"), "-p", script], timeout=600)
    if r.returncode:
        return yosys_errors(r.stdout + r.stderr + _read(out / "synth.log"), candidate), {}
    return None, _cell_counts(_read(out / "synth.log"))


def _read(p: Path) -> str:
    return p.read_text(errors="replace") if p.exists() else ""


def _cell_counts(log: str) -> dict:
    counts: dict[str, int] = {}
    for m in re.finditer(r"^\s+(SB_\w+)\s+(\d+)\s*$", log, re.M):
        counts[m.group(1)] = int(m.group(2))
    return counts


def check_netlist(top_json: Path) -> str | None:
    """One clock for everything; only plain iCE40 cells (no PLL, no DSP tricks, no latches)."""
    design = json.loads(top_json.read_text())
    top = design["modules"]["top"]
    clk_bits = top["ports"]["clk"]["bits"]
    # the clock pin goes through its SB_IO; the buffered net is what flip-flops must use
    clock_nets = set(clk_bits)
    for cell in top["cells"].values():
        if cell["type"] == "SB_IO" and cell["connections"].get("PACKAGE_PIN") == clk_bits:
            clock_nets |= set(cell["connections"].get("D_IN_0", []))
    for name, cell in top["cells"].items():
        kind = cell["type"]
        if kind not in ALLOWED_CELLS:
            return f"the netlist holds a {kind} cell ({name}); only LUT, carry, flip-flop and block-RAM cells are allowed"
        ports = ("C",) if kind.startswith("SB_DFF") else ("RCLK", "WCLK") if kind == "SB_RAM40_4K" else ()
        for port in ports:
            bits = cell["connections"].get(port, [])
            if not bits or not set(bits) <= clock_nets:
                return (f"{kind} {name} is clocked by something other than clk: every flip-flop and RAM "
                        "must use the one clock (no derived or gated clocks)")
    return None


def sim_netlist(candidate: Path, out: Path) -> str | None:
    """The core as yosys elaborated it, written back as plain Verilog for the simulator."""
    script = (f"read_verilog {candidate}; hierarchy -check -top core; prep -top core; memory_collect; "
              f"opt_clean; write_verilog -noattr {out / 'core_sim.v'}")
    r = sh(["yosys", "-q", "-p", script], timeout=300)
    if r.returncode:
        return yosys_errors(r.stdout + r.stderr, candidate)
    r = sh(["verilator", "--cc", "--exe", "--build", "-j", "2", "-Wno-fatal", "-Wno-lint", "-Wno-style",
            "--top-module", "tb", "-Mdir", str(out / "vobj"), "--x-assign", "unique", "--x-initial", "unique",
            "-MAKEFLAGS", "OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O0",
            str(HERE / "tb.v"), str(HERE / "ram.v"), str(out / "core_sim.v"), str(HERE / "sim_main.cpp")],
           timeout=600, env=perl_env())
    if r.returncode or not (out / "vobj" / "Vtb").exists():
        text = r.stdout + r.stderr
        errors = [ln for ln in text.splitlines() if "%Error" in ln or "error:" in ln][:4] or text.strip().splitlines()[-4:]
        return "the simulator could not compile yosys's output of the core: " + "\n".join(errors)[:600]
    return None


def reference(name: str, image: bytes, out: Path) -> dict:
    res = rv32i.run(image)
    if res.exit_code != 0:
        raise SystemExit(f"harness error: {name} exits with {res.exit_code} on the reference model")
    insn_at = {int(line[:8], 16): int(line[9:17], 16) for line in res.trace}
    return {"trace": res.trace, "stores": res.stores, "store_pcs": res.store_pcs, "store_at": res.store_at,
            "insn_at": insn_at, "instret": res.instret, "outputs": res.outputs}


def simulate(name: str, ref: dict, out: Path, hexfile: Path) -> dict:
    work = out / "sim" / name
    work.mkdir(parents=True, exist_ok=True)
    max_cycles = MAX_CPI * ref["instret"] + 1000
    files = {k: work / f"{k}.txt" for k in ("trace", "stores", "result")}
    r = sh([str(out / "vobj" / "Vtb"), "+verilator+rand+reset+2", f"+verilator+seed+{SIM_SEED}", f"+image={hexfile}", f"+trace={files['trace']}",
            f"+stores={files['stores']}", f"+result={files['result']}", f"+max_cycles={max_cycles}"],
           timeout=600)
    result = _read(files["result"]).split()
    trace = _read(files["trace"]).splitlines()
    stores = _read(files["stores"]).splitlines()
    for f in files.values():
        f.unlink(missing_ok=True)
    if r.returncode or not result:
        return {"ok": False, "error": f"the simulation stopped without a result: {(r.stderr or r.stdout)[-300:]}"}
    trace_diff = compare.trace_divergence(ref["trace"], trace)
    store_diff = compare.store_divergence(ref["stores"], stores, ref["store_pcs"], ref["insn_at"])
    # a wrong store shows in the trace only later, if at all: report whichever came first in the program
    if store_diff and trace_diff:
        store_at = ref["store_at"][store_diff[0]] if store_diff[0] < len(ref["store_at"]) else len(ref["trace"])
        first = store_diff if store_at <= trace_diff[0] else trace_diff
    else:
        first = store_diff or trace_diff
    if result[0] == "hang":
        return {"ok": False, "error": f"no halt within {max_cycles} cycles (hang); {first[1] if first else 'no halt'}"}
    if first:
        return {"ok": False, "error": first[1]}
    return {"ok": True, "cycles": int(result[1]), "instret": ref["instret"], "outputs": ref["outputs"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidate", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--programs", nargs="*", default=None, help="only these (tests)")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    candidate = args.candidate.resolve()
    os.environ.setdefault("TMPDIR", tempfile.gettempdir())

    problem = region_problem(candidate.read_text(errors="replace"))
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(1)
    names = args.programs or ISA_TESTS + BENCHMARKS
    progs = out / "programs"
    progs.mkdir(exist_ok=True)

    def prepare(name: str) -> tuple[str, dict, Path]:
        image = build_program(name, progs).read_bytes()
        hexfile = progs / f"{name}.hex"
        write_hex(image, hexfile)
        return name, reference(name, image, out), hexfile

    with ThreadPoolExecutor(2) as pool:
        synth = pool.submit(synthesise, candidate, out)
        prepared = list(pool.map(prepare, names))
        error = sim_netlist(candidate, out)
        synth_error, cells = synth.result()
    if synth_error or error:
        print(synth_error or error, file=sys.stderr)
        raise SystemExit(1)
    results: dict = {"design_error": check_netlist(out / "top.json"), "cells": cells, "programs": {}}
    if results["design_error"] is None:
        with ThreadPoolExecutor(2) as pool:
            runs = pool.map(lambda p: (p[0], simulate(p[0], p[1], out, p[2])), prepared)
            results["programs"] = dict(runs)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    for tmp in ("vobj", "sim", "programs"):
        shutil.rmtree(out / tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
