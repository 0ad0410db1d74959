/* Instruction test: dependences at distance 1, 2 and 3 after ALU instructions and loads, into
   ALU operands, store data and addresses, branch operands and JALR targets. */
#include "isa.h"
main:
    la s0, buf
    li gp, 1                /* ALU -> ALU at distance 1, 2, 3 */
    li a1, 1
    addi a2, a1, 1
    nop
    addi a3, a1, 2
    nop
    nop
    addi a4, a1, 3
    add a5, a2, a3
    add a5, a5, a4
    li a6, 9
    bne a5, a6, fail
    li gp, 2                /* load -> ALU at distance 1, 2, 3 (both operands) */
    li a1, 100
    sw a1, 0(s0)
    lw a2, 0(s0)
    add a3, a2, a2
    lw a2, 0(s0)
    nop
    add a4, a2, a3
    lw a2, 0(s0)
    nop
    nop
    sub a5, a4, a2
    li a6, 200
    bne a5, a6, fail
    li gp, 3                /* load -> store data at distance 1 and 2; ALU -> store address */
    lw a2, 0(s0)
    sw a2, 4(s0)
    lw a3, 0(s0)
    nop
    sw a3, 8(s0)
    addi a5, s0, 12
    sw a3, 0(a5)
    lw a4, 12(s0)
    li a6, 100
    bne a4, a6, fail
    lw a4, 4(s0)
    bne a4, a6, fail
    lw a4, 8(s0)
    bne a4, a6, fail
    li gp, 4                /* load -> branch at distance 1 and 2 */
    lw a2, 0(s0)
    beq a2, x0, fail
    lw a2, 0(s0)
    nop
    bne a2, a6, fail
    li gp, 5                /* load -> load address (pointer chasing) at distance 1 */
    la a1, ptrs
    lw a2, 0(a1)
    lw a3, 0(a2)
    lw a4, 0(a3)
    li a6, 0x1234
    bne a4, a6, fail
    li gp, 6                /* ALU -> JALR and load -> JALR */
    la a1, 7f
    addi a1, a1, 4
    jalr x0, -4(a1)
    j fail
7:  la a1, target
    lw a2, 0(a1)
    jalr x0, 0(a2)
    j fail
8:  li gp, 7                /* the older of two writes to the same register must not win */
    li a1, 1
    li a1, 2
    add a2, a1, x0
    li a6, 2
    bne a2, a6, fail
    lw a1, 0(s0)
    li a1, 3
    addi a2, a1, 0
    li a6, 3
    bne a2, a6, fail
    li gp, 8                /* a write to x0 is not forwarded */
    li a1, 5
    add x0, a1, a1
    add a2, x0, a1
    bne a2, a1, fail
    lw x0, 0(s0)
    add a2, x0, a1
    bne a2, a1, fail
    li gp, 9                /* a taken branch right after a load, and the link used at once */
    lw a2, 0(s0)
    jal a3, 10f
10: la a4, 10b
    bne a3, a4, fail
    addi a3, a3, 4
    bne a2, a6, 11f
11: END_TESTS

    .data
    .align 2
ptrs: .word ptrs + 4, ptrs + 8, 0x1234
target: .word 8b
    .bss
    .align 2
buf: .space 32
