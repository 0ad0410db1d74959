/* Instruction test: loads and stores of every width at every legal offset, sign and zero
   extension, a load right after a store to the same word, and loaded values used at once. */
#include "isa.h"
main:
    la s0, buf
    li a1, 0x80a1c2e3
    sw a1, 0(s0)
    li gp, 1
    lw a3, 0(s0)
    bne a3, a1, fail
    TEST_EQ(2, a3, 0x80a1c2e3)
    li gp, 3; lb a3, 0(s0);  li a4, 0xffffffe3; bne a3, a4, fail
    li gp, 4; lb a3, 1(s0);  li a4, 0xffffffc2; bne a3, a4, fail
    li gp, 5; lb a3, 2(s0);  li a4, 0xffffffa1; bne a3, a4, fail
    li gp, 6; lb a3, 3(s0);  li a4, 0xffffff80; bne a3, a4, fail
    li gp, 7; lbu a3, 0(s0); li a4, 0xe3; bne a3, a4, fail
    li gp, 8; lbu a3, 3(s0); li a4, 0x80; bne a3, a4, fail
    li gp, 9; lh a3, 0(s0);  li a4, 0xffffc2e3; bne a3, a4, fail
    li gp, 10; lh a3, 2(s0); li a4, 0xffff80a1; bne a3, a4, fail
    li gp, 11; lhu a3, 0(s0); li a4, 0xc2e3; bne a3, a4, fail
    li gp, 12; lhu a3, 2(s0); li a4, 0x80a1; bne a3, a4, fail
    li gp, 13; lb a3, 1(s0); li a4, 0xffffffc2; bne a3, a4, fail
    li a1, 0x01020304
    sw a1, 4(s0)
    li gp, 14; lbu a3, 5(s0); li a4, 0x03; bne a3, a4, fail
    li gp, 15; lh a3, 6(s0); li a4, 0x0102; bne a3, a4, fail
    li gp, 16               /* byte stores at each offset leave the other bytes alone */
    sw x0, 8(s0)
    li a1, 0x11
    sb a1, 8(s0)
    li a1, 0x122
    sb a1, 9(s0)
    li a1, 0x33
    sb a1, 10(s0)
    li a1, 0xff44
    sb a1, 11(s0)
    lw a3, 8(s0)
    li a4, 0x44332211
    bne a3, a4, fail
    li gp, 17               /* halfword stores at both offsets */
    li a1, 0xabcd1234
    sh a1, 12(s0)
    li a1, 0x5678
    sh a1, 14(s0)
    lw a3, 12(s0)
    li a4, 0x56781234
    bne a3, a4, fail
    li gp, 18               /* negative offsets */
    addi a5, s0, 16
    lw a3, -8(a5)
    li a4, 0x44332211
    bne a3, a4, fail
    li gp, 19               /* store then load of the same word, back to back */
    li a1, 0x5a5a5a5a
    sw a1, 16(s0)
    lw a3, 16(s0)
    bne a3, a1, fail
    li gp, 20               /* byte store then word load of the same word */
    li a1, 0x77
    sb a1, 17(s0)
    lw a3, 16(s0)
    li a4, 0x5a5a775a
    bne a3, a4, fail
    li gp, 21               /* a loaded value used by the next instruction, and as the next address */
    la a1, ptr
    lw a2, 0(a1)
    lw a3, 0(a2)
    addi a3, a3, 1
    li a4, 0x44332212
    bne a3, a4, fail
    li gp, 22               /* a loaded value stored by the next instruction */
    lw a2, 8(s0)
    sw a2, 20(s0)
    lw a3, 20(s0)
    li a4, 0x44332211
    bne a3, a4, fail
    li gp, 23               /* copy loop */
    li a5, 0
24: add a1, s0, a5
    lbu a2, 0(a1)
    sb a2, 24(a1)
    addi a5, a5, 1
    li a4, 8
    blt a5, a4, 24b
    lw a3, 24(s0)
    lw a4, 0(s0)
    bne a3, a4, fail
    lw a3, 28(s0)
    lw a4, 4(s0)
    bne a3, a4, fail
    END_TESTS

    .data
    .align 2
ptr: .word buf + 8
    .bss
    .align 2
buf: .space 64
