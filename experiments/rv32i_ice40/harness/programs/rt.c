/* Shift-and-add multiply, restoring division, memcpy and memset: linked into every C program. */
#include "rt.h"

unsigned __mulsi3(unsigned a, unsigned b) {
    unsigned r = 0;
    while (b) {
        if (b & 1) r += a;
        a <<= 1;
        b >>= 1;
    }
    return r;
}

static unsigned udivmod(unsigned n, unsigned d, int want_mod) {
    unsigned q = 0, r = 0;
    for (int i = 31; i >= 0; i--) {
        r = (r << 1) | ((n >> i) & 1);
        if (r >= d) { r -= d; q |= 1u << i; }
    }
    return want_mod ? r : q;
}

unsigned __udivsi3(unsigned a, unsigned b) { return udivmod(a, b, 0); }
unsigned __umodsi3(unsigned a, unsigned b) { return udivmod(a, b, 1); }

void *memcpy(void *d, const void *s, unsigned n) {
    unsigned char *dp = d;
    const unsigned char *sp = s;
    while (n--) *dp++ = *sp++;
    return d;
}

void *memset(void *d, int c, unsigned n) {
    unsigned char *dp = d;
    while (n--) *dp++ = (unsigned char)c;
    return d;
}
