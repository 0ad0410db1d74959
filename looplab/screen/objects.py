"""The checks on the candidate's object, compiled alone (`nm`, `readelf`, `objdump` listings made by
compiler_screen.script()): what it exports, which sections and symbols it carries, what it imports."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from looplab.config import ScreenConfig
from looplab.records import Outcome


@dataclass
class Finding:
    outcome: Outcome  # SCREEN_REJECTED or COMPILE_ERROR
    reason: str


_INIT_SECTIONS = re.compile(r"^\.(init|fini|init_array|fini_array|preinit_array|ctors|dtors)(\.|$)")
# The sections gcc makes for C (with -ffunction-sections/-fdata-sections, debug info, profiling, CET):
# anything else comes from a section attribute or asm, and the linker may treat it specially.
_COMPILER_SECTIONS = re.compile(
    r"^(\.(text|data|bss|rodata|tdata|tbss|lrodata|ldata|lbss)(\..*)?|\.rela?\..*|\.(comment|symtab|strtab|shstrtab|"
    r"group|eh_frame|note\.GNU-stack|note\.gnu\.property|note\.GNU-split-stack|note\.GNU-no-split-stack|sframe|"
    r"stack_sizes|gnu\.attributes|llvm_addrsig)|\.gcc_except_table.*|\.z?debug_.*|\.gnu\.build\.attributes.*|"
    r"__mcount_loc|__patchable_function_entries)$")
SYSCALL_INSN = r"syscall|sysenter|int +\$0x80|svc|ecall"  # in objdump -d output: x86, arm64, riscv

# What a pure compute kernel may import: libm, the string functions compilers emit and call,
# a few stdlib helpers, and compiler runtime helpers.
_MATH = """acos asin atan atan2 cos sin tan acosh asinh atanh cosh sinh tanh exp exp2 exp10 expm1 log log2
log10 log1p logb ilogb pow sqrt cbrt hypot fabs fmod remainder remquo fma fmax fmin fdim ceil floor trunc
round lround llround rint lrint llrint nearbyint copysign nan frexp ldexp scalbn scalbln modf erf erfc
tgamma lgamma nextafter nexttoward sincos significand""".split()
_STRING = """memcpy memmove memset memcmp memchr memrchr mempcpy bcmp strlen strnlen strcmp strncmp strchr
strrchr strstr strspn strcspn strpbrk strcpy strncpy stpcpy strcat strncat""".split()
_STDLIB = "abs labs llabs div ldiv lldiv qsort bsearch".split()
_RUNTIME = """__stack_chk_fail __stack_chk_fail_local __stack_chk_guard _GLOBAL_OFFSET_TABLE_ __cpu_model
__cpu_features2 __cpu_indicator_init __assert_fail""".split()  # a failed assert: its message, then an abort
DEFAULT_SYMBOLS = frozenset(
    [f + s for f in _MATH for s in ("", "f", "l")] + [f"__{f}{s}_finite" for f in _MATH for s in ("", "f", "l")]
    + [f"__{f}{s}" for f in ("fpclassify", "isnan", "isinf", "finite", "signbit") for s in ("", "f", "l")]
    + _STRING + [f"__{f}_chk" for f in _STRING] + _STDLIB + _RUNTIME)
_LIBMVEC = re.compile(r"^_ZGV[a-zA-Z]N\d+[a-z\d]*_(\w+?)f?$")  # vectorised libm (glibc libmvec)
_LIBGCC = re.compile(r"^__(ash[lr]|lshr|u?div|u?mod|udivmod|mul|neg|u?cmp|absv|addv|subv|mulv|negv|clz|ctz|ffs|"
                     r"clrsb|parity|popcount|bswap|add|sub|extend|trunc|fixuns|fix|floatun|float|eq|ne|ge|gt|le|lt|"
                     r"unord|powi)(ti|di|si|sf|df|tf|xf|hf|bf|sc|dc|tc|xc|hc)*[234]?$")  # libgcc's helpers
ALLOWED_SUMMARY = "math.h functions, mem*/str* string functions, abs/div/qsort/bsearch, assert, compiler helpers"


def object_problem(listing: str, target: str, policy: ScreenConfig, *, imports: bool) -> Finding | None:
    """The first rule the object breaks; imports=False leaves the policy (imports, system calls) out."""
    if "@@failed" in listing or "Section Headers:" not in listing:  # fail closed, never open
        return Finding(Outcome.INFRA_ERROR, "could not list the candidate's object (nm, readelf, objdump)")
    undefined, _, rest = listing.partition("@@defined")
    defined, _, rest = rest.partition("@@sections")
    sections_text, _, rest = rest.partition("@@symbols")
    symbols_text, _, code = rest.partition("@@code")
    if imports and code.strip():
        return _rejected(f"makes a system call itself (`{code.split(':', 1)[-1].strip()[:60]}`); "
                         "a candidate may not make system calls")
    sections = _sections(sections_text)
    for name, flags in sections.values():
        if _INIT_SECTIONS.match(name):
            return _rejected(f"defines a constructor, destructor or load-time code (section {name}); "
                             f"only {target} may run")
        if name == ".note.GNU-stack" and "X" in flags:
            return _rejected("needs an executable stack (a nested function?); write a static helper instead")
        if "W" in flags and "X" in flags:
            return _rejected(f"makes a writable and executable section {name}")
        if name and not _COMPILER_SECTIONS.match(name):
            return _rejected(f"puts code or data in a section of its own ({name}); leave sections to the compiler")
    for sym in symbols_text.splitlines():
        parts = sym.split()
        if len(parts) < 8 or not parts[0].endswith(":"):
            continue
        kind, ndx, name = parts[3], parts[6], parts[7]
        if kind == "IFUNC":
            return _rejected(f"makes `{name}` an ifunc (ifunc or target_clones: a resolver runs at load time); "
                             "choose the code path inside the function")
        if kind in ("OBJECT", "TLS", "COMMON") and ndx.isdigit() and "X" in sections.get(int(ndx), ("", ""))[1]:
            return _rejected(f"places data `{name}` in an executable section; code must come from the compiler")
    for line in defined.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] != target:
            return _rejected(f"defines exported symbol {parts[0]}; only {target} may be exported (make helpers static)")
    for line in undefined.splitlines() if imports else []:
        parts = line.split()
        if len(parts) >= 2 and not symbol_allowed(parts[0], policy):
            extra = ", ".join(policy.allowed_symbols)
            allowed = ALLOWED_SUMMARY + (f", {extra}" if extra else "")
            return _rejected(f"calls `{parts[0]}`, which a candidate may not call (allowed: {allowed})")
    return None


def _rejected(reason: str) -> Finding:
    return Finding(Outcome.SCREEN_REJECTED, reason)


def _sections(text: str) -> dict[int, tuple[str, str]]:
    """readelf -SW: index → (name, flags)."""
    out: dict[int, tuple[str, str]] = {}
    pattern = (r"^\s*\[\s*(\d+)\]\s+(\S+)\s+(\S+)\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+"
               r"([A-Za-z]*)\s+\d+\s+\d+\s+\d+\s*$")
    for m in re.finditer(pattern, text, re.M):
        out[int(m.group(1))] = (m.group(2), m.group(4))
    return out


def symbol_allowed(name: str, policy: ScreenConfig) -> bool:
    """May the candidate's object import this symbol?"""
    name = name.split("@")[0]
    if name in DEFAULT_SYMBOLS or _LIBGCC.match(name):
        return True
    m = _LIBMVEC.match(name)
    if m and m.group(1) in _MATH:
        return True
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in policy.allowed_symbols)
