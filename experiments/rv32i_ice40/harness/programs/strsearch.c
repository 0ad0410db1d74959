/* Holdout benchmark: naive substring counting and a byte histogram over generated text. */
#include "rt.h"
#define N 700
static char text[N + 1];
static unsigned short hist[32];
static const char *const pats[] = {"ab", "bca", "aab", "cabac", "dd"};

static unsigned count(const char *t, const char *p) {
    unsigned c = 0;
    for (int i = 0; t[i]; i++) {
        int k = 0;
        while (p[k] && t[i + k] == p[k]) k++;
        if (!p[k]) c++;
    }
    return c;
}

int main(void) {
    unsigned s = 0xC0FFEEu;
    for (int i = 0; i < N; i++) {
        s ^= s << 13; s ^= s >> 17; s ^= s << 5;
        text[i] = (char)('a' + (s >> 7) % 4u);
    }
    text[N] = 0;
    unsigned h = 0;
    for (unsigned i = 0; i < sizeof pats / sizeof pats[0]; i++) h = (h << 4) ^ count(text, pats[i]);
    for (int i = 0; i < N; i++) hist[(unsigned char)text[i] & 31]++;
    for (int i = 0; i < 32; i++) h = ((h << 3) | (h >> 29)) ^ hist[i];
    out(h);
    return 0;
}
