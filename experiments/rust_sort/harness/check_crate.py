"""What the crate's own objects may hold, checked after `cargo build` and before the worker is linked.

    python check_crate.py LIBRARY.a CRATE TARGET

The worker runs the crate only after it has confined itself with seccomp; code that runs earlier
would not be confined. So, as looplab's compiler screen does for a C candidate, this refuses in the
crate's own objects (not Rust's standard library, which the archive also holds):

- start-up and shut-down code: .init_array, .preinit_array, .fini_array, .ctors, .dtors, .init, .fini
  sections, and IFUNC symbols (their resolvers run in the dynamic loader);
- executable code outside .text sections, and sections both writable and executable;
- exported symbols besides TARGET, the allocator shim rustc generates, and Rust-mangled names of the
  crate itself: a `#[no_mangle]` `malloc` or `clock_gettime` would replace the C library's in the worker.

Prints one `error: ...` line per finding (the build fails with it) and exits 1; exit 0 when clean.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

STARTUP = re.compile(r"^\.(init_array|preinit_array|fini_array|ctors|dtors)(\..*)?$|^\.(init|fini)$")
# rustc's allocator shim (a crate object of its own) and a #[global_allocator]'s entry points; newer
# rustc versions name them with v0 mangling under `__rustc`
SHIM = re.compile(r"^(_R\w*___rustc\d+)?__(rust|rg|rdl)_(alloc|dealloc|realloc|alloc_zeroed|alloc_error_handler|oom"
                  r"|no_alloc_shim)\w*$")


def run(*argv: str, cwd: str | None = None) -> str:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True).stdout


def crate_members(archive: Path, crate: str) -> list[str]:
    """The archive's members compiled from the crate (rustc names them CRATE-HASH.*.o)."""
    return [m for m in run("ar", "t", str(archive)).split() if m.startswith(crate + "-") and m.endswith(".o")]


def sections(obj: Path) -> list[tuple[str, str]]:
    """(name, flags) of every section, from `readelf -S -W`."""
    out = []
    for line in run("readelf", "-S", "-W", str(obj)).splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+([A-Za-z]*)\s", line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def problems(obj: Path, crate: str, target: str) -> list[str]:
    found = []
    for name, flags in sections(obj):
        if STARTUP.match(name):
            found.append(f"section {name}: code that would run before the worker is confined is not allowed")
        elif "X" in flags and "W" in flags:
            found.append(f"section {name} is writable and executable")
        elif "X" in flags and not name.startswith(".text"):
            found.append(f"section {name} holds code outside .text (no #[link_section] on functions)")
    # the crate's own items, in legacy (_ZN9rust_sort...) and v0 (_RNvCs<hash>_9rust_sort...) mangling
    own = re.compile(rf"^(_ZN|_R[A-Za-z]*Cs[0-9A-Za-z]*_){len(crate)}{crate}")
    for line in run("nm", "-P", "--defined-only", str(obj)).splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        symbol, kind = parts[0], parts[1]
        if kind == "i":
            found.append(f"symbol {symbol} is an IFUNC (its resolver would run before the worker is confined)")
        elif (kind.isupper() or kind == "u") and kind != "U" and symbol != target and not SHIM.match(symbol) \
                and not own.match(symbol):
            found.append(f"exports {symbol}: only {target} may be #[no_mangle] (or #[export_name]); "
                         "keep every other item private")
    return found


def main(argv: list[str]) -> int:
    try:
        return check(argv)
    except (OSError, subprocess.CalledProcessError) as e:  # fail closed, in one line
        detail = e.stderr.strip() if isinstance(e, subprocess.CalledProcessError) and e.stderr else str(e)
        print(f"error: check_crate.py could not read the crate's objects: {detail[:300]}")
        return 1


def check(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    archive, crate, target = Path(argv[1]).resolve(), argv[2], argv[3]
    members = crate_members(archive, crate)
    if not members:
        print(f"error: no object of crate {crate} in {archive.name}")
        return 1
    found: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        run("ar", "x", str(archive), *members, cwd=tmp)
        for m in members:
            found += problems(Path(tmp) / m, crate, target)
        if not any(line.split()[:1] == [target] for m in members
                   for line in run("nm", "-P", "--defined-only", str(Path(tmp) / m)).splitlines()):
            found.append(f"the crate does not define {target}: keep #[no_mangle] pub unsafe extern \"C\" fn {target}")
    for f in dict.fromkeys(found):
        print(f"error: {f}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
