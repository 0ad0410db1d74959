/* What the programs share: the output register, and helpers RV32I has no instruction for. */
#ifndef RT_H
#define RT_H
#ifdef NATIVE /* the same program on the host: the tests check the reference model against it */
#include <stdio.h>
#include <string.h>
static inline void out(unsigned x) { printf("%u\n", x); }
#else
#define OUTPUT (*(volatile unsigned *)0x80000000u)
static inline void out(unsigned x) { OUTPUT = x; }
unsigned __mulsi3(unsigned a, unsigned b);
unsigned __udivsi3(unsigned a, unsigned b);
unsigned __umodsi3(unsigned a, unsigned b);
void *memcpy(void *d, const void *s, unsigned n);
void *memset(void *d, int c, unsigned n);
#endif
#endif
