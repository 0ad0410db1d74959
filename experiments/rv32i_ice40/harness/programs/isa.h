/* Self-checking instruction tests: each TEST sets gp to its number; a wrong result jumps to fail,
   which stores that number to the halt register (exit code != 0). main returns 0 when all pass. */
#define TEST_RR(n, op, want, a, b) \
    li gp, n; li a1, a; li a2, b; op a3, a1, a2; li a4, want; bne a3, a4, fail;
#define TEST_RI(n, op, want, a, imm) \
    li gp, n; li a1, a; op a3, a1, imm; li a4, want; bne a3, a4, fail;
#define TEST_SAME(n, op, want, a) /* rd == rs1 == rs2 */ \
    li gp, n; li a1, a; op a1, a1, a1; li a4, want; bne a1, a4, fail;
#define TEST_EQ(n, reg, want) \
    li gp, n; li a4, want; bne reg, a4, fail;
#define BR_TAKEN(n, op, a, b) \
    li gp, n; li a1, a; li a2, b; op a1, a2, 1f; j fail; 1:
#define BR_NOT(n, op, a, b) \
    li gp, n; li a1, a; li a2, b; op a1, a2, fail;

    .text
    .globl main
#define END_TESTS \
    li a0, 0; ret; \
fail: mv a0, gp; ret;
