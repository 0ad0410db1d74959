/* Search benchmark: recursive quicksort of 200 pseudo-random words, then a checksum of the order. */
#include "rt.h"
#define N 200
static unsigned a[N];

static unsigned xorshift(unsigned *s) {
    unsigned x = *s;
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    return *s = x;
}

static void quicksort(unsigned *v, int lo, int hi) {
    while (lo < hi) {
        unsigned pivot = v[(lo + hi) >> 1];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) { unsigned t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
        }
        if (j - lo < hi - i) { quicksort(v, lo, j); lo = i; }
        else { quicksort(v, i, hi); hi = j; }
    }
}

int main(void) {
    unsigned s = 0x2545F491u, h = 0;
    for (int i = 0; i < N; i++) a[i] = xorshift(&s) >> 8;
    quicksort(a, 0, N - 1);
    for (int i = 0; i < N; i++) {
        if (i && a[i - 1] > a[i]) return 1;
        h = ((h << 5) | (h >> 27)) ^ a[i];
    }
    out(h);
    return 0;
}
