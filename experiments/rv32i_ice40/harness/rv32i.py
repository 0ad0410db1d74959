"""The reference model: an RV32I instruction-set simulator of the experiment's machine.

The machine: 4 KB of RAM at address 0 (the program image, zero beyond it), an output register at
0x80000000 (each word stored there is one output) and a halt register at 0x80000004 (the word stored
there is the exit code; the program stops after that store). Anything else is a fault: a load or store
outside those, a misaligned access, an illegal instruction, a jump to a misaligned or unmapped pc.

`run(image)` returns what a correct core must show: the retirement trace (pc, instruction, rd, value
written) and the stores in order, in the text form the test bench writes, so a core's run is compared
line by line (see compare.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

RAM_BYTES = 4096
OUTPUT_ADDR = 0x80000000
HALT_ADDR = 0x80000004
MASK = 0xFFFFFFFF


class Fault(Exception):
    """The program did something the machine does not allow: a bug in the program, not in a core."""


@dataclass
class Result:
    trace: list[str] = field(default_factory=list)  # "pc insn rd value" per retired instruction
    stores: list[str] = field(default_factory=list)  # "word_addr strb data" per store (data masked)
    store_pcs: list[int] = field(default_factory=list)  # which instruction did each store
    store_at: list[int] = field(default_factory=list)  # its index in the trace
    outputs: list[int] = field(default_factory=list)
    exit_code: int | None = None

    @property
    def instret(self) -> int:
        return len(self.trace)


def _sext(value: int, bits: int) -> int:
    sign = 1 << (bits - 1)
    return ((value & (sign * 2 - 1)) ^ sign) - sign


def trace_line(pc: int, insn: int, rd: int, value: int) -> str:
    return f"{pc:08x} {insn:08x} {rd:02x} {value & MASK if rd else 0:08x}"


def store_line(addr: int, strb: int, data: int) -> str:
    mask = sum(0xFF << (8 * i) for i in range(4) if strb >> i & 1)
    return f"{addr & ~3 & MASK:08x} {strb:x} {data & mask:08x}"


def run(image: bytes, max_instructions: int = 5_000_000) -> Result:
    if len(image) > RAM_BYTES:
        raise Fault(f"image of {len(image)} bytes does not fit in {RAM_BYTES} bytes of RAM")
    mem = bytearray(RAM_BYTES)
    mem[:len(image)] = image
    x = [0] * 32
    pc = 0
    res = Result()
    trace, stores = res.trace, res.stores

    def load(addr: int, size: int, signed: bool) -> int:
        if addr % size:
            raise Fault(f"misaligned {size}-byte load from 0x{addr:08x} at pc 0x{pc:08x}")
        if addr + size > RAM_BYTES:
            raise Fault(f"load from unmapped 0x{addr:08x} at pc 0x{pc:08x}")
        v = int.from_bytes(mem[addr:addr + size], "little")
        return _sext(v, 8 * size) & MASK if signed else v

    def store(addr: int, size: int, value: int) -> bool:
        if addr % size:
            raise Fault(f"misaligned {size}-byte store to 0x{addr:08x} at pc 0x{pc:08x}")
        strb = ((1 << size) - 1) << (addr & 3)
        data = (value << (8 * (addr & 3))) & MASK
        stores.append(store_line(addr, strb, data))
        res.store_pcs.append(pc)
        res.store_at.append(len(trace))
        if addr in (OUTPUT_ADDR, HALT_ADDR):
            if size != 4:
                raise Fault(f"{size}-byte store to the {'output' if addr == OUTPUT_ADDR else 'halt'} register at pc 0x{pc:08x}")
            if addr == OUTPUT_ADDR:
                res.outputs.append(value & MASK)
                return False
            res.exit_code = value & MASK
            return True
        if addr + size > RAM_BYTES:
            raise Fault(f"store to unmapped 0x{addr:08x} at pc 0x{pc:08x}")
        mem[addr:addr + size] = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")
        return False

    for _ in range(max_instructions):
        if pc % 4 or pc + 4 > RAM_BYTES:
            raise Fault(f"fetch from {'misaligned' if pc % 4 else 'unmapped'} pc 0x{pc:08x}")
        insn = int.from_bytes(mem[pc:pc + 4], "little")
        op, rd, f3 = insn & 0x7F, (insn >> 7) & 31, (insn >> 12) & 7
        rs1, rs2, f7 = (insn >> 15) & 31, (insn >> 20) & 31, insn >> 25
        a, b = x[rs1], x[rs2]
        nxt = pc + 4
        value = None  # what rd receives
        halted = False
        if op == 0x33 and f7 in (0, 0x20) and (f7 == 0 or f3 in (0, 5)):  # OP
            sh = b & 31
            value = {0: (a - b) if f7 else (a + b), 1: a << sh, 2: int(_sext(a, 32) < _sext(b, 32)),
                     3: int(a < b), 4: a ^ b, 5: (_sext(a, 32) >> sh) if f7 else (a >> sh), 6: a | b,
                     7: a & b}[f3]
        elif op == 0x13 and (f3 not in (1, 5) or f7 in (0, 0x20) and (f3 == 5 or f7 == 0)):  # OP-IMM
            imm = _sext(insn >> 20, 12) & MASK
            sh = rs2
            value = {0: a + imm, 1: a << sh, 2: int(_sext(a, 32) < _sext(imm, 32)), 3: int(a < imm),
                     4: a ^ imm, 5: (_sext(a, 32) >> sh) if f7 else (a >> sh), 6: a | imm, 7: a & imm}[f3]
        elif op == 0x37:  # LUI
            value = insn & 0xFFFFF000
        elif op == 0x17:  # AUIPC
            value = pc + (insn & 0xFFFFF000)
        elif op == 0x6F:  # JAL
            imm = _sext(((insn >> 31) << 20) | (((insn >> 12) & 0xFF) << 12) | (((insn >> 20) & 1) << 11)
                        | (((insn >> 21) & 0x3FF) << 1), 21)
            value, nxt = pc + 4, (pc + imm) & MASK
        elif op == 0x67 and f3 == 0:  # JALR
            value, nxt = pc + 4, (a + _sext(insn >> 20, 12)) & MASK & ~1
        elif op == 0x63 and f3 not in (2, 3):  # BRANCH
            sa, sb = _sext(a, 32), _sext(b, 32)
            taken = {0: a == b, 1: a != b, 4: sa < sb, 5: sa >= sb, 6: a < b, 7: a >= b}[f3]
            if taken:
                imm = _sext(((insn >> 31) << 12) | (((insn >> 7) & 1) << 11) | (((insn >> 25) & 0x3F) << 5)
                            | (((insn >> 8) & 0xF) << 1), 13)
                nxt = (pc + imm) & MASK
        elif op == 0x03 and f3 in (0, 1, 2, 4, 5):  # LOAD
            addr = (a + _sext(insn >> 20, 12)) & MASK
            value = load(addr, 1 << (f3 & 3), f3 < 4)
        elif op == 0x23 and f3 in (0, 1, 2):  # STORE
            addr = (a + _sext(((insn >> 25) << 5) | ((insn >> 7) & 31), 12)) & MASK
            halted = store(addr, 1 << f3, b)
        elif op == 0x0F:  # FENCE: no effect on this machine
            pass
        else:
            raise Fault(f"illegal instruction 0x{insn:08x} at pc 0x{pc:08x}")
        if value is not None and rd:
            x[rd] = value & MASK
        trace.append(trace_line(pc, insn, rd if value is not None else 0, x[rd] if value is not None else 0))
        if halted:
            return res
        pc = nxt
    raise Fault(f"no halt within {max_instructions} instructions")
