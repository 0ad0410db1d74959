/* Instruction test: every branch taken and not taken at signed/unsigned corners, forward and
   backward; JAL and JALR targets and links; JALR clears bit 0 of its target. */
#include "isa.h"
main:
    mv s1, ra
    BR_TAKEN(1, beq, 5, 5)
    BR_NOT(2, beq, 5, 6)
    BR_TAKEN(3, bne, 0, 0x80000000)
    BR_NOT(4, bne, -1, -1)
    BR_TAKEN(5, blt, 0x80000000, 0x7fffffff)
    BR_NOT(6, blt, 0x7fffffff, 0x80000000)
    BR_NOT(7, blt, 3, 3)
    BR_TAKEN(8, bge, 3, 3)
    BR_TAKEN(9, bge, -1, -2)
    BR_NOT(10, bge, 0x80000000, 0)
    BR_TAKEN(11, bltu, 0x7fffffff, 0x80000000)
    BR_NOT(12, bltu, 0xffffffff, 0)
    BR_TAKEN(13, bgeu, 0xffffffff, 0)
    BR_TAKEN(14, bgeu, 7, 7)
    BR_NOT(15, bgeu, 0, 1)
    li gp, 16               /* a backward loop: 10 taken backward branches, one not taken */
    li a1, 0
    li a2, 10
2:  addi a1, a1, 1
    blt a1, a2, 2b
    li a4, 10
    bne a1, a4, fail
    li gp, 17               /* jal links pc+4 and jumps forward */
    jal a5, 3f
4:  j fail
3:  la a4, 4b
    bne a5, a4, fail
    li gp, 18               /* jalr: target = rs1 + imm with bit 0 cleared */
    la a1, 5f
    addi a1, a1, -3
    jalr a5, 4(a1)          /* a1 + 4 = 5f + 1: bit 0 cleared lands on 5f */
6:  j fail
5:  la a4, 6b
    bne a5, a4, fail
    li gp, 19               /* jalr with rd == rs1 */
    la a1, 7f
    jalr a1, 0(a1)
8:  j fail
7:  la a4, 8b
    bne a1, a4, fail
    li gp, 20               /* call and return through a function */
    li a0, 20
    call double_it
    li a4, 40
    bne a0, a4, fail
    li gp, 21               /* a taken branch must not execute the instructions after it */
    li a1, 0
    beq x0, x0, 9f
    addi a1, a1, 1
    addi a1, a1, 1
9:  bne a1, x0, fail
    li gp, 22               /* nor a jump */
    li a1, 0
    j 10f
    addi a1, a1, 1
    addi a1, a1, 1
10: bne a1, x0, fail
    li gp, 23               /* branch on a result computed just before */
    li a1, 7
    addi a2, a1, -7
    bne a2, x0, fail
    addi a2, a2, 1
    beq a2, x0, fail
    li gp, 24               /* a long backward jump and a far forward branch */
    j 12f
11: j 13f
12: j 11b
13: mv ra, s1
    END_TESTS

double_it:
    add a0, a0, a0
    ret
