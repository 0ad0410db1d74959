"""Measure a core outside looplab: build it once, place and route it with N seeds, print the spread.

    python3 harness/spread.py core.v [--seeds 8] [--cases qsort crc32 matmul]

Prints per seed the Fmax (nextpnr, icetime, the min that counts) and the seconds one evaluation took,
then per case the IPC and the score's mean, standard deviation and range over the seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("candidate", type=Path)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--cases", nargs="*", default=["qsort", "crc32", "matmul"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "build"
        start = time.monotonic()
        r = subprocess.run([sys.executable, str(HERE / "build.py"), "--candidate", str(args.candidate.resolve()),
                            "--out", str(out)], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"build failed: {r.stderr}")
        print(f"build: {time.monotonic() - start:.1f} s")
        rows: list[dict] = []
        for _ in range(args.seeds):
            start = time.monotonic()
            r = subprocess.run([sys.executable, str(HERE / "evaluate.py"), "--build", str(out), "--workdir", tmp,
                                *args.cases], capture_output=True, text=True)
            wall = time.monotonic() - start
            lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
            if not all(ln["ok"] for ln in lines):
                raise SystemExit(f"invalid: {lines}")
            m = lines[0]
            print(f"seed {m['seed']:>10}: nextpnr {m['nextpnr_mhz']:6.2f} MHz, icetime {m['icetime_mhz']:6.2f} MHz, "
                  f"Fmax {m['fmax_mhz']:6.2f} MHz, {m['lc']} LCs, {m['ram']} RAMs, evaluation {wall:.1f} s")
            rows.append({ln["case"]: ln for ln in lines} | {"_wall": wall})
    fmax = [r[args.cases[0]]["fmax_mhz"] for r in rows]
    print(f"Fmax: mean {statistics.fmean(fmax):.2f} MHz, sd {statistics.pstdev(fmax):.2f} "
          f"({100 * statistics.pstdev(fmax) / statistics.fmean(fmax):.1f}%), range {min(fmax):.2f}-{max(fmax):.2f}; "
          f"evaluation {statistics.fmean(r['_wall'] for r in rows):.1f} s on average")
    for case in args.cases:
        scores = [r[case]["score"] for r in rows]
        print(f"{case:10} ipc {rows[0][case]['ipc']:.4f} (cpi {rows[0][case]['cpi']:.3f}), score {statistics.fmean(scores):.3f} "
              f"MIPS, sd {statistics.pstdev(scores):.3f}, range {min(scores):.3f}-{max(scores):.3f}")


if __name__ == "__main__":
    main()
