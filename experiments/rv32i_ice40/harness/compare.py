"""Compare a core's simulated run with the reference model; say where it first diverged.

The test bench writes the retirement trace ("pc insn rd value" per instruction) and the stores
("word_addr strobes data") in the reference model's text form, so both are compared line by line and
only the first difference is explained: which instruction (pc, its disassembly, the register and
values), or which store, and what the reference expected there.
"""

from __future__ import annotations

ABI = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
       "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6"]


def _sext(v: int, bits: int) -> int:
    s = 1 << (bits - 1)
    return ((v & (2 * s - 1)) ^ s) - s


def disasm(insn: int, pc: int = 0) -> str:
    """A short RV32I disassembly for messages (not a full disassembler)."""
    op, rd, f3 = insn & 0x7F, (insn >> 7) & 31, (insn >> 12) & 7
    rs1, rs2, f7 = (insn >> 15) & 31, (insn >> 20) & 31, insn >> 25
    r = ABI
    imm_i = _sext(insn >> 20, 12)
    if op == 0x33:
        names = {0: "sub" if f7 else "add", 1: "sll", 2: "slt", 3: "sltu", 4: "xor", 5: "sra" if f7 else "srl",
                 6: "or", 7: "and"}
        return f"{names[f3]} {r[rd]},{r[rs1]},{r[rs2]}"
    if op == 0x13:
        if f3 in (1, 5):
            name = "slli" if f3 == 1 else ("srai" if f7 else "srli")
            return f"{name} {r[rd]},{r[rs1]},{rs2}"
        names = {0: "addi", 2: "slti", 3: "sltiu", 4: "xori", 6: "ori", 7: "andi"}
        return f"{names[f3]} {r[rd]},{r[rs1]},{imm_i}"
    if op == 0x37:
        return f"lui {r[rd]},0x{insn >> 12:x}"
    if op == 0x17:
        return f"auipc {r[rd]},0x{insn >> 12:x}"
    if op == 0x6F:
        imm = _sext(((insn >> 31) << 20) | (((insn >> 12) & 0xFF) << 12) | (((insn >> 20) & 1) << 11)
                    | (((insn >> 21) & 0x3FF) << 1), 21)
        return f"jal {r[rd]},0x{(pc + imm) & 0xFFFFFFFF:x}"
    if op == 0x67:
        return f"jalr {r[rd]},{imm_i}({r[rs1]})"
    if op == 0x63:
        imm = _sext(((insn >> 31) << 12) | (((insn >> 7) & 1) << 11) | (((insn >> 25) & 0x3F) << 5)
                    | (((insn >> 8) & 0xF) << 1), 13)
        names = {0: "beq", 1: "bne", 4: "blt", 5: "bge", 6: "bltu", 7: "bgeu"}
        return f"{names.get(f3, '?')} {r[rs1]},{r[rs2]},0x{(pc + imm) & 0xFFFFFFFF:x}"
    if op == 0x03:
        names = {0: "lb", 1: "lh", 2: "lw", 4: "lbu", 5: "lhu"}
        return f"{names.get(f3, '?')} {r[rd]},{imm_i}({r[rs1]})"
    if op == 0x23:
        imm = _sext(((insn >> 25) << 5) | ((insn >> 7) & 31), 12)
        return f"{ {0: 'sb', 1: 'sh', 2: 'sw'}.get(f3, '?')} {r[rs2]},{imm}({r[rs1]})"
    if op == 0x0F:
        return "fence"
    return f".word 0x{insn:08x}"


def _fields(line: str) -> list[str]:
    return line.split()


def _describe(line: str) -> str:
    f = _fields(line)
    if len(f) != 4:
        return repr(line[:60])
    pc, insn, rd, value = f
    try:
        text = disasm(int(insn, 16), int(pc, 16))
    except ValueError:
        text = f"insn {insn}"
    reg = _reg(rd)
    return f"pc 0x{pc} ({text}" + (f", {reg}=0x{value})" if reg != "none" else ")")


def first_trace_difference(expected: list[str], got: list[str]) -> str | None:
    """None when `got` starts with all of `expected` (a core may retire more after the halt)."""
    found = trace_divergence(expected, got)
    return found[1] if found else None


def trace_divergence(expected: list[str], got: list[str]) -> tuple[int, str] | None:
    """(index of the first differing instruction in `expected`, what differs), or None."""
    for i, want in enumerate(expected):
        if i >= len(got):
            last = f"; the last retired was {_describe(got[-1])}" if got else ""
            return i, (f"the core retired only {len(got)} of the program's {len(expected)} instructions "
                       f"before stopping; the next expected was {_describe(want)}{last}")
        if got[i] != want:
            return i, _explain(i, want, got[i], expected)
    return None


def _explain(i: int, want: str, have: str, expected: list[str]) -> str:
    w, h = _fields(want), _fields(have)
    where = f"retired instruction #{i + 1}"
    prev = f" (after {_describe(expected[i - 1])})" if i else ""
    if len(h) != 4:
        return f"first diverging instruction: {where} is malformed on the retirement port: {have[:60]!r}"
    if h[0] != w[0] or h[1] != w[1]:
        return (f"first diverging instruction: {where}{prev}: expected {_describe(want)}, "
                f"but the core retired pc 0x{h[0]} insn 0x{h[1]}")
    pc, insn = int(w[0], 16), int(w[1], 16)
    head = f"first diverging instruction at pc 0x{w[0]} ({disasm(insn, pc)}), {where}"
    if h[2] != w[2]:
        return f"{head}: expected rd={_reg(w[2])}, the core reported rd={_reg(h[2])}"
    return f"{head}: expected {_reg(w[2])}=0x{w[3]}, got {_reg(h[2])}=0x{h[3]}"


def _reg(field: str) -> str:
    try:
        n = int(field, 16)
        return f"x{n}({ABI[n]})" if n else "none"
    except (ValueError, IndexError):
        return field


def first_store_difference(expected: list[str], got: list[str], store_pcs: list[int],
                           insn_at: dict[int, int]) -> str | None:
    found = store_divergence(expected, got, store_pcs, insn_at)
    return found[1] if found else None


def store_divergence(expected: list[str], got: list[str], store_pcs: list[int],
                     insn_at: dict[int, int]) -> tuple[int, str] | None:
    """(index of the first differing store, what differs), or None."""
    for i in range(max(len(expected), len(got))):
        want = expected[i] if i < len(expected) else None
        have = got[i] if i < len(got) else None
        if want == have:
            continue
        if want is None:
            return i, f"store #{i + 1} is one the program never does: mem[0x{_store(have)}"
        pc = store_pcs[i]
        by = f"pc 0x{pc:08x} ({disasm(insn_at.get(pc, 0), pc)})"
        if have is None:
            return i, f"the core made only {len(got)} stores; store #{i + 1}, by {by}, expected mem[0x{_store(want)} is missing"
        return i, f"first diverging store: store #{i + 1}, by {by}: expected mem[0x{_store(want)}, got mem[0x{_store(have)}"
    return None


def _store(line: str) -> str:
    f = line.split()
    return f"{f[0]}] strobes {f[1]} <= 0x{f[2]}" if len(f) == 3 else f"?] {line[:40]!r}"
