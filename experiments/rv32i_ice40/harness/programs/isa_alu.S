/* Instruction test: every register-register and immediate ALU instruction, LUI and AUIPC,
   at their corner values, and results used by the very next instruction. */
#include "isa.h"
main:
    TEST_RR(1, add, 0x00000000, 0x00000000, 0x00000000)
    TEST_RR(2, add, 0x80000000, 0x7fffffff, 0x00000001)
    TEST_RR(3, add, 0xfffffffe, 0xffffffff, 0xffffffff)
    TEST_RR(4, sub, 0xffffffff, 0x00000000, 0x00000001)
    TEST_RR(5, sub, 0x7fffffff, 0x80000000, 0x00000001)
    TEST_RR(6, and, 0x0f000f00, 0xff00ff00, 0x0f0f0f0f)
    TEST_RR(7, or,  0xff0fff0f, 0xff00ff00, 0x0f0f0f0f)
    TEST_RR(8, xor, 0xf00ff00f, 0xff00ff00, 0x0f0f0f0f)
    TEST_RR(9, sll, 0x80000000, 0x00000001, 31)
    TEST_RR(10, sll, 0x00000002, 0x00000001, 0xffffffe1)  /* only rs2[4:0] counts */
    TEST_RR(11, srl, 0x00000001, 0x80000000, 31)
    TEST_RR(12, srl, 0x7fffffff, 0xffffffff, 0xffffffe1)
    TEST_RR(13, sra, 0xffffffff, 0x80000000, 31)
    TEST_RR(14, sra, 0xc0000000, 0x80000000, 1)
    TEST_RR(15, sra, 0x3fffffff, 0x7fffffff, 1)
    TEST_RR(16, slt, 1, 0x80000000, 0x7fffffff)
    TEST_RR(17, slt, 0, 0x7fffffff, 0x80000000)
    TEST_RR(18, slt, 0, 5, 5)
    TEST_RR(19, sltu, 0, 0x80000000, 0x7fffffff)
    TEST_RR(20, sltu, 1, 0x7fffffff, 0x80000000)
    TEST_RR(21, sltu, 1, 0, 0xffffffff)
    TEST_RI(22, addi, 0x00000000, 0x00000001, -1)
    TEST_RI(23, addi, 0x800007fe, 0x7fffffff, 0x7ff)
    TEST_RI(24, addi, 0x7ffff7ff, 0x7fffffff, -0x800)
    TEST_RI(25, andi, 0xff00ff00, 0xff00ff00, -1)
    TEST_RI(26, andi, 0x00000700, 0xff00ff00, 0x70f)
    TEST_RI(27, ori,  0xfffff80f, 0x0000000f, -0x800)
    TEST_RI(28, xori, 0x00ff00f0, 0xff00ff0f, -1)
    TEST_RI(29, slti, 1, 0xffffffff, 0)
    TEST_RI(30, slti, 0, 0x00000000, -1)
    TEST_RI(31, sltiu, 1, 0xfffffffe, -1)  /* the immediate is sign-extended, then compared unsigned */
    TEST_RI(32, sltiu, 0, 0xffffffff, -1)
    TEST_RI(33, sltiu, 1, 0x00000000, 1)
    TEST_RI(34, slli, 0x80000000, 0x00000001, 31)
    TEST_RI(35, srli, 0x00000001, 0x80000000, 31)
    TEST_RI(36, srai, 0xffffffff, 0x80000000, 31)
    TEST_RI(37, srai, 0x00000001, 0x00000002, 1)
    TEST_SAME(38, add, 0x00000002, 1)
    TEST_SAME(39, sub, 0, 0x12345678)
    TEST_SAME(40, xor, 0, 0x12345678)
    TEST_SAME(41, sll, 0x00000008, 0x00000002)
    li gp, 42
    lui a1, 0x80000
    li a4, 0x80000000
    bne a1, a4, fail
    li gp, 43
    lui a1, 0xfffff
    srai a1, a1, 12
    li a4, -1
    bne a1, a4, fail
    li gp, 44
1:  auipc a1, 0x1
    la a2, 1b
    sub a1, a1, a2
    li a4, 0x1000
    bne a1, a4, fail
    li gp, 45               /* chains: each result used by the next instruction */
    li a1, 3
    add a2, a1, a1
    add a3, a2, a1
    sub a4, a3, a2
    slli a5, a4, 4
    or a5, a5, a2
    li a4, 0x36
    bne a5, a4, fail
    li gp, 46               /* writes to x0 are discarded, also when the next instruction reads x0 */
    li x0, 123
    addi a1, x0, 5
    add a2, x0, x0
    li a4, 5
    bne a1, a4, fail
    bne a2, x0, fail
    li gp, 47               /* lui/auipc results used at once */
    lui a1, 0x12345
    addi a1, a1, 0x678
    li a4, 0x12345678
    bne a1, a4, fail
    END_TESTS
