"""One evaluation of a built core: place and route with a fresh seed, then one JSON line per case.

    python3 evaluate.py --build DIR --workdir DIR --nonce NONCE CASE...

The simulations ran in the build (build.py: deterministic, cached per source); what changes from one
evaluation to the next is the place-and-route seed, drawn here from OS randomness, so looplab's
rounds are seed replicates. Per case (benchmark program):

    score = Fmax [MHz] x instructions / cycles     (millions of the program's instructions per second)

where instructions is the reference model's count for the program (fixed: the same binary for every
core), cycles is what the core took in simulation, and Fmax is the lower of two independent timing
analyses of the same routed design: nextpnr's own report and icetime's (fpga-icestorm) on the
bitstream nextpnr wrote, so a design that games one timing model still gets the other's number.

A case is invalid when an instruction test failed (every case), its own program failed, a design rule
is broken, or the design does not fit the iCE40-HX8K (with the utilisation).
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEVICE, PACKAGE = "hx8k", "ct256"
TARGET_MHZ = 12  # the board's oscillator; nextpnr reports the maximum whatever the goal (same seed, same result)


def line(case: str, nonce: str, **fields) -> None:
    print(json.dumps({"case": case, "nonce": nonce, **fields}), flush=True)


def place_and_route(build: Path, work: Path, seed: int) -> dict:
    log = work / "pnr.log"
    asc = work / "top.asc"
    start = time.monotonic()
    r = subprocess.run(["nextpnr-ice40", f"--{DEVICE}", "--package", PACKAGE, "--json", str(build / "top.json"),
                        "--pcf", str(HERE / "top.pcf"), "--asc", str(asc), "--seed", str(seed),
                        "--freq", str(TARGET_MHZ), "--timing-allow-fail", "-q", "-l", str(log)],
                       capture_output=True, text=True, timeout=900)
    text = log.read_text(errors="replace") if log.exists() else r.stdout + r.stderr
    pnr_s = time.monotonic() - start
    util = {m.group(1): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"^Info:\s+(ICESTORM_LC|ICESTORM_RAM|SB_IO|SB_GB):\s+(\d+)/\s*(\d+)", text, re.M)}
    used = ", ".join(f"{k} {u}/{n}" for k, (u, n) in util.items() if k in ("ICESTORM_LC", "ICESTORM_RAM"))
    if r.returncode or not asc.exists():
        errors = [ln.removeprefix("ERROR: ") for ln in text.splitlines() if ln.startswith("ERROR")]
        over = [k for k, (u, n) in util.items() if u > n]
        why = f"does not fit the iCE40-{DEVICE.upper()}: {used}" if over or not errors else \
            f"place and route failed ({used}): {errors[0][:300]}"
        return {"error": why}
    freqs = re.findall(r"Max frequency for clock '([^']*)': ([\d.]+) MHz", text)
    clocks = {name for name, _ in freqs}
    if len(clocks) != 1:
        return {"error": f"expected one clock domain (clk), nextpnr timed {len(clocks)}: {sorted(clocks)[:4]}"}
    nextpnr_mhz = float(freqs[-1][1])  # the last report is after routing
    t = subprocess.run(["icetime", "-d", DEVICE, "-P", PACKAGE, "-p", str(HERE / "top.pcf"), "-t", str(asc)],
                       capture_output=True, text=True, timeout=300)
    m = re.search(r"Total path delay: [\d.]+ ns \(([\d.]+) MHz\)", t.stdout)
    if not m:
        return {"error": f"icetime could not time the design: {(t.stderr or t.stdout)[-200:]}"}
    icetime_mhz = float(m.group(1))
    return {"fmax_mhz": min(nextpnr_mhz, icetime_mhz), "nextpnr_mhz": nextpnr_mhz, "icetime_mhz": icetime_mhz,
            "lc": util.get("ICESTORM_LC", (0, 0))[0], "ram": util.get("ICESTORM_RAM", (0, 0))[0],
            "pnr_s": round(pnr_s, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, type=Path)
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--nonce", default="")
    ap.add_argument("--seed", type=int, default=None, help="place-and-route seed (default: OS randomness)")
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    results = json.loads((args.build / "results.json").read_text())
    programs = results["programs"]
    nonce = args.nonce

    def fail(case: str, error: str) -> None:
        line(case, nonce, ok=False, error=error, failure="invalid")

    known = [c for c in args.cases if c in programs and not c.startswith("isa_")]
    design_error = results.get("design_error")
    isa_error = next((f"instruction test {name}: {r['error']}" for name, r in programs.items()
                      if name.startswith("isa_") and not r["ok"]), None)
    passing = [c for c in known if programs[c]["ok"]] if not (design_error or isa_error) else []
    timing: dict = {}
    if passing:
        seed = args.seed if args.seed is not None else secrets.randbelow(2**31 - 1) + 1
        timing = place_and_route(args.build, args.workdir, seed)
        timing["seed"] = seed
    for case in args.cases:
        if case not in known:
            line(case, nonce, ok=False, error="unknown case")
        elif design_error:
            fail(case, design_error)
        elif isa_error:
            fail(case, isa_error)
        elif not programs[case]["ok"]:
            fail(case, f"{case}: {programs[case]['error']}")
        elif "error" in timing:
            fail(case, timing["error"])
        else:
            p = programs[case]
            ipc = p["instret"] / p["cycles"]
            line(case, nonce, ok=True, score=round(timing["fmax_mhz"] * ipc, 4), fmax_mhz=timing["fmax_mhz"],
                 nextpnr_mhz=timing["nextpnr_mhz"], icetime_mhz=timing["icetime_mhz"], cycles=p["cycles"],
                 instret=p["instret"], ipc=round(ipc, 5), cpi=round(1 / ipc, 4), lc=timing["lc"],
                 ram=timing["ram"], seed=timing["seed"], pnr_s=timing["pnr_s"])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
